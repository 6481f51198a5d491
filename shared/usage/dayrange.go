package usage

import "time"

// MaxRangeDays is the longest range of days anything may ask for: an
// analytics query, a backfill queued by an admin or a backfill run of the
// aggregate job.
const MaxRangeDays = 366

// DayRange is an inclusive range of UTC days, From..To, each end a midnight
// UTC.
type DayRange struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Len returns how many days the range holds, both ends included.
func (r DayRange) Len() int { return int(r.To.Sub(r.From).Hours()/24) + 1 }

// Days returns every day of the range, in order.
func (r DayRange) Days() []time.Time {
	var days []time.Time
	for d := Day(r.From); !d.After(Day(r.To)); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	return days
}

// Validate checks that both ends are set and are days (midnight UTC), that
// From is not after To and that the range is at most MaxRangeDays long.
// Errors are CodeInvalid naming "from" or "to".
func (r DayRange) Validate() error {
	switch {
	case r.From.IsZero():
		return FieldErrorf("from", "is required")
	case r.To.IsZero():
		return FieldErrorf("to", "is required")
	case !r.From.Equal(Day(r.From)):
		return FieldErrorf("from", "must be a day (midnight UTC)")
	case !r.To.Equal(Day(r.To)):
		return FieldErrorf("to", "must be a day (midnight UTC)")
	case r.To.Before(r.From):
		return FieldErrorf("to", "must not be before from")
	case r.Len() > MaxRangeDays:
		return FieldErrorf("to", "range longer than %d days", MaxRangeDays)
	}
	return nil
}
