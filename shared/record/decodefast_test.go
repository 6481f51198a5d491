package record

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nexus/usage/shared/usage"
)

// The fast path's tests live inside the package: they compare decodeFast
// with decodeSlow, the strict decoder every other input takes.

var fastNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const fastEventJSON = `{"v":1,"event_id":"0195f3a0-0000-7000-8000-000000000001","user_id":"6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5","endpoint":"GET /v1/games/{id}","method":"GET","status_code":200,"latency_ms":12,"request_bytes":100,"response_bytes":2048,"occurred_at":"2026-03-10T11:59:00Z"}`

// fastBatch is a message as shared/sqspub packs it: a JSON array of n
// events, marshalled by encoding/json.
func fastBatch(t testing.TB, n int) []byte {
	t.Helper()
	events := make([]usage.Event, n)
	for i := range events {
		events[i] = usage.Event{Version: 1, EventID: "0195f3a0-0000-7000-8000-" + strconv.FormatInt(100000000000+int64(i), 10),
			UserID: "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5", Endpoint: "GET /v1/games/{id}", Method: "GET", StatusCode: 200 + i%400,
			LatencyMS: int64(i), RequestBytes: int64(i * 7), ResponseBytes: int64(i * 11), Quantity: int64(1 + i%3),
			OccurredAt: fastNow.Add(-time.Duration(i) * time.Minute)}
		if i%2 == 0 {
			events[i].APIKeyID = "7a1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5"
		}
	}
	body, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestDecodeFastTakesWhatProducersSend: the bodies producers send (an
// event object, arrays of 1 to 100, marshalled by encoding/json, in any
// whitespace) take the fast path, with the strict decoder's events.
func TestDecodeFastTakesWhatProducersSend(t *testing.T) {
	bodies := map[string][]byte{
		"one object":      []byte(fastEventJSON),
		"array of 1":      fastBatch(t, 1),
		"array of 100":    fastBatch(t, 100),
		"whitespace":      []byte(" \n\t[ " + fastEventJSON + " ,\r\n" + strings.Replace(fastEventJSON, "0001", "0002", 1) + " ]\n"),
		"null api key":    []byte(strings.Replace(fastEventJSON, `"v":1,`, `"v":1,"api_key_id":null,`, 1)),
		"escaped text":    []byte(strings.Replace(fastEventJSON, `"GET /v1/games/{id}"`, `"GET /v1/caf\u00e9s/\"{id}\""`, 1)),
		"other time zone": []byte(strings.Replace(fastEventJSON, `"2026-03-10T11:59:00Z"`, `"2026-03-10T13:59:00.123456+02:00"`, 1)),
		"no version":      []byte(strings.Replace(fastEventJSON, `"v":1,`, ``, 1)),
		"capital ids":     []byte(strings.Replace(fastEventJSON, "6f1c2d3e-4b5a-4c6d-8e7f", "6F1C2D3E-4B5A-4C6D-8E7F", 1)),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			fast, ok := decodeFast(body, fastNow, usage.DefaultBackfillWindow)
			if !ok {
				t.Fatalf("decodeFast(%s) declined", body)
			}
			slow, rejected := decodeSlow(body, fastNow, usage.DefaultBackfillWindow)
			if len(rejected) > 0 {
				t.Fatalf("decodeSlow(%s) rejected %+v", body, rejected)
			}
			if diff := cmp.Diff(slow, fast); diff != "" {
				t.Errorf("decodeFast(%s) (-strict +fast):\n%s", body, diff)
			}
		})
	}
}

// TestDecodeFastDeclines: input the fast path does not read as
// encoding/json would, or that is not valid, goes to the strict decoder
// (whose result, and only its result, Decode returns).
func TestDecodeFastDeclines(t *testing.T) {
	tests := []struct{ name, body string }{
		{"escaped time", strings.Replace(fastEventJSON, `11:59:00Z"`, `11:59:00\u005a"`, 1)}, // encoding/json refuses it
		{"name in another case", strings.Replace(fastEventJSON, `"method"`, `"METHOD"`, 1)},  // encoding/json takes it
		{"escaped name", strings.Replace(fastEventJSON, `"method"`, `"m\u0065thod"`, 1)},
		{"duplicate member", strings.Replace(fastEventJSON, `"v":1,`, `"v":1,"v":1,`, 1)},
		{"null after a value", strings.Replace(fastEventJSON, `"status_code":200,`, `"status_code":200,"status_code":null,`, 1)},
		{"invalid UTF-8", strings.Replace(fastEventJSON, `{id}`, "{i\xffd}", 1)},
		{"lone surrogate", strings.Replace(fastEventJSON, `{id}`, `{\ud800}`, 1)},
		{"fraction", strings.Replace(fastEventJSON, `"latency_ms":12`, `"latency_ms":12.0`, 1)},
		{"exponent", strings.Replace(fastEventJSON, `"latency_ms":12`, `"latency_ms":1e1`, 1)},
		{"past int64", strings.Replace(fastEventJSON, `"latency_ms":12`, `"latency_ms":9223372036854775808`, 1)},
		{"string for integer", strings.Replace(fastEventJSON, `"status_code":200`, `"status_code":"200"`, 1)},
		{"number for string", strings.Replace(fastEventJSON, `"GET /v1/games/{id}"`, `5`, 1)},
		{"unknown member", strings.Replace(fastEventJSON, `"v":1,`, `"v":1,"colour":"red",`, 1)},
		{"invalid event", strings.Replace(fastEventJSON, `"GET",`, `"FETCH",`, 1)},
		{"one invalid of two", "[" + fastEventJSON + "," + strings.Replace(fastEventJSON, `"GET",`, `"FETCH",`, 1) + "]"},
		{"element not an object", "[" + fastEventJSON + ",7]"},
		{"empty array", "[]"},
		{"too many", string(fastBatch(t, 101))},
		{"trailing data", fastEventJSON + " {}"},
		{"syntax error", fastEventJSON[:40]},
		{"null", "null"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if events, ok := decodeFast([]byte(tt.body), fastNow, usage.DefaultBackfillWindow); ok {
				t.Errorf("decodeFast(%s) = %+v; want it declined", tt.body, events)
			}
		})
	}
}

// FuzzDecodeFast holds the fast path to the strict decoder: whatever it
// takes, the strict decoder takes too, as the same events and no
// rejection. Its seeds are FuzzDecode's corpus and the bodies above.
func FuzzDecodeFast(f *testing.F) {
	f.Add([]byte(fastEventJSON))
	f.Add(fastBatch(f, 3))
	f.Add([]byte(strings.Replace(fastEventJSON, `11:59:00Z"`, `11:59:00\u005a"`, 1)))
	f.Add([]byte(strings.Replace(fastEventJSON, `"v":1,`, `"v":1,"api_key_id":null,`, 1)))
	f.Add([]byte(strings.Replace(fastEventJSON, `"latency_ms":12`, `"latency_ms":-0`, 1)))
	files, err := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		// "go test fuzz v1" then one []byte("...") line.
		_, line, _ := bytes.Cut(b, []byte("\n"))
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(line)), "[]byte(")
		if !ok {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeFast(body, fastNow, usage.DefaultBackfillWindow)
		if !ok {
			return
		}
		slow, rejected := decodeSlow(body, fastNow, usage.DefaultBackfillWindow)
		if len(rejected) > 0 {
			t.Fatalf("decodeFast(%q) took what the strict decoder rejects: %+v", body, rejected)
		}
		if diff := cmp.Diff(slow, fast); diff != "" {
			t.Fatalf("decodeFast(%q) (-strict +fast):\n%s", body, diff)
		}
	})
}

// BenchmarkDecode measures Decode of a message of 100 events as the
// publisher packs them, by the fast path and by the strict decoder alone
// (what Decode did before the fast path).
func BenchmarkDecode(b *testing.B) {
	body := fastBatch(b, 100)
	for _, tt := range []struct {
		name   string
		decode func([]byte, time.Time, time.Duration) ([]usage.Event, []Rejection)
	}{{"fast", Decode}, {"strict", decodeSlow}} {
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if events, rejected := tt.decode(body, fastNow, usage.DefaultBackfillWindow); len(events) != 100 || len(rejected) > 0 {
					b.Fatalf("%d events, %+v", len(events), rejected)
				}
			}
			b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "events/s")
		})
	}
}
