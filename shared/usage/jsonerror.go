package usage

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"time"
)

// JSONError says in our own words what is wrong with a JSON input of size
// bytes that encoding/json refused: a CodeInvalid error naming the field at
// fault, or whole (what the input as a whole is called: "body", "input",
// "message") for syntax errors, without encoding/json's Go type names:
//
//	body: invalid JSON at byte 12
//	body: invalid JSON at byte 40: it ends too early
//	cost: must be an integer
//	colour: is not a field of this request
func JSONError(err error, size int, whole string) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return FieldErrorf(whole, "invalid JSON at byte %d", se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return FieldErrorf(whole, "invalid JSON at byte %d: it ends too early", size)
	case errors.Is(err, io.EOF):
		return FieldErrorf(whole, "is empty")
	case IsTimeError(err):
		return FieldErrorf(whole, "holds a date-time that is not RFC 3339")
	case errors.As(err, &te):
		field := jsonPath(te.Field)
		if field == "" {
			field = whole
		}
		return FieldErrorf(field, "must be %s", jsonType(te))
	}
	if name, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
		of := whole
		if whole == "body" {
			of = "request"
		}
		return FieldErrorf(strings.TrimSuffix(name, `"`), "is not a field of this %s", of)
	}
	return FieldErrorf(whole, "holds a value that cannot be read")
}

// jsonPath is a type error's field path as the input spells it.
// encoding/json puts in the path the Go name of each struct a field is
// promoted from (embedded without a JSON name: "RuleInput.value"); the
// input's names are the JSON tags, all in small letters, so the segments
// that start with a capital are such Go names, and are left out.
func jsonPath(field string) string {
	segs := strings.Split(field, ".")
	out := segs[:0]
	for _, s := range segs {
		if s != "" && !(s[0] >= 'A' && s[0] <= 'Z') {
			out = append(out, s)
		}
	}
	return strings.Join(out, ".")
}

// IsTimeError reports whether err comes from decoding a time.Time, whose
// errors carry no field name.
func IsTimeError(err error) bool {
	var pe *time.ParseError
	return errors.As(err, &pe) || strings.HasPrefix(err.Error(), "Time.UnmarshalJSON")
}

// jsonType names the JSON type of the Go value a type error is about.
func jsonType(te *json.UnmarshalTypeError) string {
	t := te.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch k := t.Kind(); {
	case k == reflect.Bool:
		return "a boolean"
	case k == reflect.String:
		return "a string"
	case k >= reflect.Int && k <= reflect.Uint64:
		if strings.HasPrefix(te.Value, "number") {
			return "an integer in range"
		}
		return "an integer"
	case k == reflect.Float32 || k == reflect.Float64:
		return "a number"
	case k == reflect.Slice || k == reflect.Array:
		return "an array"
	case k == reflect.Map || k == reflect.Struct:
		return "an object"
	}
	return "another JSON value"
}
