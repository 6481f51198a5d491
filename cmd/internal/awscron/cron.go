package awscron

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed schedule expression.
type Schedule interface {
	// Next returns the first time strictly after t that the schedule
	// fires, in t's location, or the zero time if it never fires again.
	Next(t time.Time) time.Time
}

// Parse parses "cron(min hour dom month dow year)" or "rate(n unit)".
func Parse(expr string) (Schedule, error) {
	expr = strings.TrimSpace(expr)
	switch {
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		return ParseCron(expr[len("cron(") : len(expr)-1])
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		return parseRate(expr[len("rate(") : len(expr)-1])
	}
	return nil, fmt.Errorf("schedule %q: want cron(...) or rate(...)", expr)
}

// Rate fires every Every, on multiples of Every counted from the Unix epoch
// (EventBridge counts from the rule's creation; locally any fixed origin
// will do).
type Rate struct{ Every time.Duration }

// Next implements Schedule.
func (r Rate) Next(t time.Time) time.Time {
	next := t.Truncate(r.Every).Add(r.Every)
	return next
}

func parseRate(s string) (Schedule, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return nil, fmt.Errorf("rate(%s): want rate(value unit)", s)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("rate(%s): value must be a positive whole number", s)
	}
	units := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
	unit, ok := units[strings.TrimSuffix(f[1], "s")]
	if !ok {
		return nil, fmt.Errorf("rate(%s): unit must be minute(s), hour(s) or day(s)", s)
	}
	if (n == 1) != !strings.HasSuffix(f[1], "s") {
		return nil, fmt.Errorf("rate(%s): use %q with 1 and %q otherwise", s, strings.TrimSuffix(f[1], "s"), strings.TrimSuffix(f[1], "s")+"s")
	}
	return Rate{Every: time.Duration(n) * unit}, nil
}

// Cron is a parsed six-field AWS cron expression.
type Cron struct {
	minutes, hours, months [64]bool
	doms                   [32]bool
	lastDOM                bool
	anyDOW                 bool // day-of-week is ?
	dows                   [8]bool
	lastDOW                [8]bool // nL
	nthDOW                 [8][6]bool
	years                  map[int]bool // nil: every year
	expr                   string
}

func (c *Cron) String() string { return "cron(" + c.expr + ")" }

var monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
	"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
var dayNames = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}

// ParseCron parses the six fields of an AWS cron expression (without the
// "cron(" and ")").
func ParseCron(s string) (*Cron, error) {
	f := strings.Fields(s)
	if len(f) != 6 {
		return nil, fmt.Errorf("cron(%s): want 6 fields (minutes hours day-of-month month day-of-week year), got %d", s, len(f))
	}
	c := &Cron{expr: strings.Join(f, " ")}
	wrap := func(field string, err error) error { return fmt.Errorf("cron(%s): %s: %w", s, field, err) }
	if err := setField(c.minutes[:], f[0], 0, 59, nil); err != nil {
		return nil, wrap("minutes", err)
	}
	if err := setField(c.hours[:], f[1], 0, 23, nil); err != nil {
		return nil, wrap("hours", err)
	}
	if err := setField(c.months[:], f[3], 1, 12, monthNames); err != nil {
		return nil, wrap("month", err)
	}
	domQ, dowQ := f[2] == "?", f[4] == "?"
	if domQ == dowQ {
		return nil, fmt.Errorf("cron(%s): exactly one of day-of-month and day-of-week must be ?", s)
	}
	if domQ {
		if err := c.setDOW(f[4]); err != nil {
			return nil, wrap("day-of-week", err)
		}
	} else {
		c.anyDOW = true
		switch {
		case f[2] == "L":
			c.lastDOM = true
		case strings.ContainsAny(f[2], "WL"):
			return nil, wrap("day-of-month", fmt.Errorf("%q is not supported (only L alone)", f[2]))
		default:
			if err := setField(c.doms[:], f[2], 1, 31, nil); err != nil {
				return nil, wrap("day-of-month", err)
			}
		}
	}
	if f[5] != "*" {
		var years [2200]bool
		if err := setField(years[:], f[5], 1970, 2199, nil); err != nil {
			return nil, wrap("year", err)
		}
		c.years = map[int]bool{}
		for y, ok := range years {
			if ok {
				c.years[y] = true
			}
		}
	}
	return c, nil
}

func (c *Cron) setDOW(v string) error {
	for _, part := range strings.Split(v, ",") {
		switch {
		case strings.Contains(part, "#"):
			d, k, _ := strings.Cut(part, "#")
			dn, err := value(d, 1, 7, dayNames)
			if err != nil {
				return err
			}
			kn, err := strconv.Atoi(k)
			if err != nil || kn < 1 || kn > 5 {
				return fmt.Errorf("%q: the week after # must be 1-5", part)
			}
			c.nthDOW[dn][kn] = true
		case part == "L":
			c.lastDOW[7] = true
		case strings.HasSuffix(part, "L"):
			dn, err := value(strings.TrimSuffix(part, "L"), 1, 7, dayNames)
			if err != nil {
				return err
			}
			c.lastDOW[dn] = true
		default:
			if err := setField(c.dows[:], part, 1, 7, dayNames); err != nil {
				return err
			}
		}
	}
	return nil
}

// setField marks the values of a field: * , a-b /n and names.
func setField(set []bool, v string, lo, hi int, names map[string]int) error {
	for _, part := range strings.Split(v, ",") {
		rng, stepS, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepS)
			if err != nil || n <= 0 {
				return fmt.Errorf("%q: the step must be a positive whole number", part)
			}
			step = n
		}
		var from, to int
		switch {
		case rng == "*":
			from, to = lo, hi
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if from, err = value(a, lo, hi, names); err != nil {
				return err
			}
			if to, err = value(b, lo, hi, names); err != nil {
				return err
			}
			if from > to {
				return fmt.Errorf("%q: the range runs backwards", part)
			}
		default:
			var err error
			if from, err = value(rng, lo, hi, names); err != nil {
				return err
			}
			to = from
			if hasStep {
				to = hi
			}
		}
		for i := from; i <= to; i += step {
			set[i] = true
		}
	}
	return nil
}

func value(s string, lo, hi int, names map[string]int) (int, error) {
	if n, ok := names[strings.ToUpper(s)]; ok {
		return n, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is outside %d-%d", n, lo, hi)
	}
	return n, nil
}

// maxYears bounds Next's search.
const maxYears = 50

// Next implements Schedule.
func (c *Cron) Next(t time.Time) time.Time {
	loc := t.Location()
	t = t.Truncate(time.Minute).Add(time.Minute)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	end := day.AddDate(maxYears, 0, 0)
	for ; day.Before(end); day = day.AddDate(0, 0, 1) {
		if c.years != nil && !c.years[day.Year()] {
			if day.Year() > maxYearOf(c.years) {
				return time.Time{}
			}
			day = time.Date(day.Year()+1, 1, 1, 0, 0, 0, 0, loc).AddDate(0, 0, -1)
			continue
		}
		if !c.months[day.Month()] || !c.dayMatches(day) {
			continue
		}
		for h := 0; h < 24; h++ {
			if !c.hours[h] {
				continue
			}
			for m := 0; m < 60; m++ {
				if !c.minutes[m] {
					continue
				}
				at := time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, loc)
				// Skip times a DST change removes (Date normalises them).
				if at.Hour() != h || at.Minute() != m {
					continue
				}
				if !at.Before(t) {
					return at
				}
			}
		}
	}
	return time.Time{}
}

func maxYearOf(years map[int]bool) int {
	m := 0
	for y := range years {
		m = max(m, y)
	}
	return m
}

func (c *Cron) dayMatches(day time.Time) bool {
	last := time.Date(day.Year(), day.Month()+1, 0, 0, 0, 0, 0, day.Location()).Day()
	if c.anyDOW {
		return c.doms[day.Day()] || (c.lastDOM && day.Day() == last)
	}
	dow := int(day.Weekday()) + 1
	if c.dows[dow] {
		return true
	}
	if c.lastDOW[dow] && day.Day()+7 > last {
		return true
	}
	return c.nthDOW[dow][(day.Day()-1)/7+1]
}
