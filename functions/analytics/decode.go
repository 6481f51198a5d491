package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

// readBody returns the request body, at most limit bytes. Errors name
// "body": CodeTooLarge (413) beyond the limit, CodeInvalid otherwise.
func readBody(r *httpapi.Request, limit int) ([]byte, error) {
	b, err := r.Body()
	if err != nil {
		return nil, usage.FieldErrorf("body", "is not valid base64")
	}
	if len(b) > limit {
		return nil, &usage.Error{Code: usage.CodeTooLarge, Field: "body", Message: fmt.Sprintf("body: larger than %d bytes", limit)}
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
		return usage.JSONError(err, len(b), "body")
	}
	off := d.InputOffset()
	if _, err := d.Token(); err != io.EOF {
		off += int64(len(b[off:]) - len(bytes.TrimLeft(b[off:], " \t\r\n")))
		return usage.FieldErrorf("body", "must hold one JSON value; more follows at byte %d", off+1)
	}
	return nil
}

// namedTwice reports whether the JSON object b names the member name more
// than once, in any case, as encoding/json matches names: the decoder
// keeps the last value and says nothing of the others.
func namedTwice(b []byte, name string) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	seen := false
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return false
		}
		if k, _ := t.(string); strings.EqualFold(k, name) {
			if seen {
				return true
			}
			seen = true
		}
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}
