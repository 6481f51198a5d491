// Package usagetest holds what tests of several packages share about the
// vocabulary: the test cases that the Go packages and the TypeScript
// package (clients/typescript) read from one file, so that both languages
// are held to the same rules, and the plans' terms tests price with.
package usagetest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// NormalizeFile is the shared normalisation cases' file, relative to the
// module's root.
const NormalizeFile = "shared/usage/testdata/normalize.json"

// NormalizeCases are the cases of NormalizeFile: how a metered request's
// method, endpoint and status become an event's, and which characters are
// of Unicode category Cf.
type NormalizeCases struct {
	Method   []StringCase
	Endpoint []StringCase
	Status   []StatusCase
	// LatencyMS and Bytes are the clamping of an event's latency_ms and
	// of its request_bytes and response_bytes.
	LatencyMS []IntCase
	Bytes     []IntCase
	// CfRanges are the inclusive ranges of category Cf, in order.
	CfRanges [][2]rune
}

// StringCase is one case of a text rule; In and Want are expanded from the
// file's parts, so they may hold bytes that are not UTF-8.
type StringCase struct {
	Name     string
	In, Want string
}

// StatusCase is one case of status clamping.
type StatusCase struct {
	In   int `json:"in"`
	Want int `json:"want"`
}

// IntCase is one case of clamping a measure into an event's bounds.
type IntCase struct {
	In   int64 `json:"in"`
	Want int64 `json:"want"`
}

// ReadNormalizeCases reads NormalizeFile, failing tb when it cannot.
func ReadNormalizeCases(tb testing.TB) NormalizeCases {
	tb.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("usagetest: cannot locate its own source")
	}
	path := filepath.Join(filepath.Dir(self), "..", "testdata", "normalize.json")
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var raw struct {
		Method   []rawCase    `json:"method"`
		Endpoint []rawCase    `json:"endpoint"`
		Status   []StatusCase `json:"status"`
		Latency  []IntCase    `json:"latency_ms"`
		Bytes    []IntCase    `json:"bytes"`
		CfRanges [][2]string  `json:"cf_ranges"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	var c NormalizeCases
	text := func(list []rawCase) []StringCase {
		var out []StringCase
		for i, r := range list {
			in, err := expand(r.In)
			if err != nil {
				tb.Fatalf("%s: case %d (%s): in: %v", path, i, r.Name, err)
			}
			want, err := expand(r.Want)
			if err != nil {
				tb.Fatalf("%s: case %d (%s): want: %v", path, i, r.Name, err)
			}
			if r.Name == "" {
				r.Name = strconv.Quote(in)
			}
			out = append(out, StringCase{Name: r.Name, In: in, Want: want})
		}
		return out
	}
	c.Method, c.Endpoint, c.Status = text(raw.Method), text(raw.Endpoint), raw.Status
	c.LatencyMS, c.Bytes = raw.Latency, raw.Bytes
	for _, r := range raw.CfRanges {
		lo, err1 := codePoint(r[0])
		hi, err2 := codePoint(r[1])
		if err1 != nil || err2 != nil || hi < lo {
			tb.Fatalf("%s: cf range %v is not two code points U+XXXX in order", path, r)
		}
		c.CfRanges = append(c.CfRanges, [2]rune{lo, hi})
	}
	return c
}

type rawCase struct {
	Name string          `json:"name"`
	In   json.RawMessage `json:"in"`
	Want json.RawMessage `json:"want"`
}

// expand joins a case's input: a string, or a list of strings,
// {"repeat": s, "times": n} and {"hex": "ff"} parts.
func expand(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("not a string or a list of parts: %s", raw)
	}
	var b strings.Builder
	for _, p := range parts {
		var part struct {
			Repeat *string `json:"repeat"`
			Times  int     `json:"times"`
			Hex    *string `json:"hex"`
		}
		switch {
		case json.Unmarshal(p, &s) == nil:
			b.WriteString(s)
		case json.Unmarshal(p, &part) == nil && part.Repeat != nil:
			b.WriteString(strings.Repeat(*part.Repeat, part.Times))
		case part.Hex != nil:
			h, err := hex.DecodeString(*part.Hex)
			if err != nil {
				return "", fmt.Errorf("hex part %q: %v", *part.Hex, err)
			}
			b.Write(h)
		default:
			return "", fmt.Errorf("unknown part %s", p)
		}
	}
	return b.String(), nil
}

func codePoint(s string) (rune, error) {
	h, ok := strings.CutPrefix(s, "U+")
	if !ok {
		return 0, fmt.Errorf("%q is not U+XXXX", s)
	}
	n, err := strconv.ParseUint(h, 16, 32)
	return rune(n), err
}
