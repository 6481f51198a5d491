package usage_test

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nexus/usage/shared/usage"
	"github.com/nexus/usage/shared/usage/usagetest"
)

func TestNormalizeMethod(t *testing.T) {
	tests := []struct{ in, want string }{
		{"GET", "GET"}, {"get", "GET"}, {"PATCH", "PATCH"}, {"FOO", usage.MethodOther},
		{"", usage.MethodOther}, {"GET\x00", usage.MethodOther}, {"OTHER", usage.MethodOther},
	}
	for _, tt := range tests {
		if got := usage.NormalizeMethod(tt.in); got != tt.want {
			t.Errorf("NormalizeMethod(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	long := "GET /" + strings.Repeat("a", 250) + "é" + "tail" // é spans bytes 256 and 257
	tests := []struct{ name, in, want string }{
		{"plain", "GET /v1/games/{id}", "GET /v1/games/{id}"},
		{"control", "GET /v1/\x01games", "GET /v1/%01games"},
		{"zero width", "GET /v1/\u200bgames", "GET /v1/%E2%80%8Bgames"},
		{"bidi override", "GET /\u202egames", "GET /%E2%80%AEgames"},
		{"invalid utf-8", "GET /\xffx", "GET /%FFx"},
		{"nul", "GET /\x00", "GET /%00"},
		{"empty", "", usage.NoEndpoint},
		{"cut on a rune boundary", long, long[:255]},
		{"escape not cut", strings.Repeat("a", 254) + "\x01", strings.Repeat("a", 254)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := usage.NormalizeEndpoint(tt.in); got != tt.want {
				t.Errorf("NormalizeEndpoint(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzNormalizeEndpoint: whatever a server sees, the normalised method and
// endpoint make an event the record path accepts.
func FuzzNormalizeEndpoint(f *testing.F) {
	for _, s := range []string{"GET /v1/games", "\x00", "\u202e\u200b", strings.Repeat("é", 200), "\xff\xfe", "%01"} {
		f.Add(s, "FOO")
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, endpoint, method string) {
		got := usage.NormalizeEndpoint(endpoint)
		if !utf8.ValidString(got) || len(got) > usage.MaxEndpointBytes || got == "" {
			t.Fatalf("NormalizeEndpoint(%q) = %q: not valid UTF-8 of 1 to %d bytes", endpoint, got, usage.MaxEndpointBytes)
		}
		e := usage.Event{EventID: "0195f3a0-0000-7000-8000-000000000001", UserID: "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5",
			Endpoint: got, Method: usage.NormalizeMethod(method), StatusCode: 200, OccurredAt: now}
		if err := e.Validate(now, usage.DefaultBackfillWindow); err != nil {
			t.Fatalf("event of NormalizeEndpoint(%q) = %q, NormalizeMethod(%q) refused: %v", endpoint, got, method, err)
		}
	})
}

// TestNormalizeFixtures runs the cases the TypeScript package shares
// (shared/usage/testdata/normalize.json, read by clients/typescript's tests
// too), and checks that the file's category Cf is Go's.
func TestNormalizeFixtures(t *testing.T) {
	c := usagetest.ReadNormalizeCases(t)
	if len(c.Method) == 0 || len(c.Endpoint) == 0 || len(c.Status) == 0 {
		t.Fatalf("%s holds %d method, %d endpoint and %d status cases; want some of each",
			usagetest.NormalizeFile, len(c.Method), len(c.Endpoint), len(c.Status))
	}
	for _, tt := range c.Method {
		if got := usage.NormalizeMethod(tt.In); got != tt.Want {
			t.Errorf("NormalizeMethod(%q) = %q; want %q", tt.In, got, tt.Want)
		}
	}
	for _, tt := range c.Endpoint {
		t.Run(tt.Name, func(t *testing.T) {
			if got := usage.NormalizeEndpoint(tt.In); got != tt.Want {
				t.Errorf("NormalizeEndpoint(%q) = %q; want %q", tt.In, got, tt.Want)
			}
		})
	}
	var want [][2]rune
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !unicode.Is(unicode.Cf, r) {
			continue
		}
		if n := len(want); n > 0 && want[n-1][1] == r-1 {
			want[n-1][1] = r
		} else {
			want = append(want, [2]rune{r, r})
		}
		if usage.PrintableRune(r) {
			t.Errorf("PrintableRune(%U) = true; want false for category Cf", r)
		}
	}
	if !slices.Equal(c.CfRanges, want) {
		t.Errorf("cf_ranges of %s = %U; want Go's category Cf (Unicode %s) %U", usagetest.NormalizeFile, c.CfRanges, unicode.Version, want)
	}
}
