package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

// readBody returns the request body, at most limit bytes. Errors name
// "body".
func readBody(r *httpapi.Request, limit int) ([]byte, error) {
	b, err := r.Body()
	if err != nil {
		return nil, usage.FieldErrorf("body", "is not valid base64")
	}
	if len(b) > limit {
		return nil, usage.FieldErrorf("body", "larger than %d bytes", limit)
	}
	return b, nil
}

// decodeJSON decodes b, which must hold exactly one JSON value, into v.
// Strict decoding refuses fields that v does not have. Errors are
// CodeInvalid in our own words, naming the field at fault or "body":
//
//	body: invalid JSON at byte 12
//	cost: must be an integer
//	colour: is not a field of this request
func decodeJSON(b []byte, v any, strict bool) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if strict {
		d.DisallowUnknownFields()
	}
	if err := d.Decode(v); err != nil {
		return jsonError(err, len(b))
	}
	off := d.InputOffset()
	if _, err := d.Token(); err != io.EOF {
		off += int64(len(b[off:]) - len(bytes.TrimLeft(b[off:], " \t\r\n")))
		return usage.FieldErrorf("body", "must hold one JSON value; more follows at byte %d", off+1)
	}
	return nil
}

// jsonError says what is wrong with a JSON input of size bytes that
// encoding/json refused, without its Go type names.
func jsonError(err error, size int) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return usage.FieldErrorf("body", "invalid JSON at byte %d", se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return usage.FieldErrorf("body", "invalid JSON at byte %d: it ends too early", size)
	case errors.Is(err, io.EOF):
		return usage.FieldErrorf("body", "is empty")
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return usage.FieldErrorf(field, "must be %s", jsonType(te))
	}
	if name, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
		return usage.FieldErrorf(strings.TrimSuffix(name, `"`), "is not a field of this request")
	}
	return usage.FieldErrorf("body", "holds a value that cannot be read")
}

// isTimeError reports whether err comes from decoding a time.Time, whose
// errors carry no field name.
func isTimeError(err error) bool {
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
