package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// MaxCursorBytes bounds an encoded cursor.
const MaxCursorBytes = 512

// FirstDate is the earliest day a date parameter may name. Earlier days
// hold no usage, and the first of them, 0001-01-01, is Go's zero time,
// which a range reads as missing.
var FirstDate = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// ParseDate parses a YYYY-MM-DD day in UTC, on or after FirstDate; errors
// name param.
func ParseDate(param, s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || len(s) != len(time.DateOnly) {
		return time.Time{}, usage.FieldErrorf(param, "must be a date YYYY-MM-DD")
	}
	if t.Before(FirstDate) {
		return time.Time{}, usage.FieldErrorf(param, "must be a date on or after %s", FirstDate.Format(time.DateOnly))
	}
	return t.UTC(), nil
}

// DayRange reads the from and to query parameters. Both are optional: to
// defaults to today and from to defaultDays−1 days before to. To may not
// lie more than a day past today. A range that is reversed or longer than
// usage.MaxRangeDays names "from", the end that moves when only to is
// given.
func (r *Request) DayRange(now time.Time, defaultDays int) (usage.DayRange, error) {
	today := usage.Day(now)
	var rg usage.DayRange
	var err error
	if s := r.Query("to"); s != "" {
		if rg.To, err = ParseDate("to", s); err != nil {
			return rg, err
		}
		if rg.To.After(today.AddDate(0, 0, 1)) {
			return rg, usage.FieldErrorf("to", "must not be in the future")
		}
	} else {
		rg.To = today
	}
	if s := r.Query("from"); s != "" {
		if rg.From, err = ParseDate("from", s); err != nil {
			return rg, err
		}
	} else {
		rg.From = rg.To.AddDate(0, 0, -(defaultDays - 1))
	}
	if rg.From.After(rg.To) {
		return rg, usage.FieldErrorf("from", "must not be after to")
	}
	if rg.Len() > usage.MaxRangeDays {
		return rg, usage.FieldErrorf("from", "range longer than %d days", usage.MaxRangeDays)
	}
	return rg, nil
}

// Limit reads the limit query parameter: def when absent, otherwise an
// integer in [1, max].
func (r *Request) Limit(def, max int) (int, error) {
	s := r.Query("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, usage.FieldErrorf("limit", "must be an integer between 1 and %d", max)
	}
	return n, nil
}

// EncodeCursor returns the opaque cursor of a list position: base64url of
// the JSON of the last row's key.
func EncodeCursor(key any) string {
	b, err := json.Marshal(key)
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads the cursor query parameter into key and reports
// whether there was one. A cursor that does not decode is CodeInvalid
// naming "cursor".
func (r *Request) DecodeCursor(key any) (bool, error) {
	s := r.Query("cursor")
	if s == "" {
		return false, nil
	}
	if len(s) > MaxCursorBytes {
		return false, usage.FieldErrorf("cursor", "is not a cursor of this list")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, key) != nil {
		return false, usage.FieldErrorf("cursor", "is not a cursor of this list")
	}
	return true, nil
}
