package soak

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// TestGenerator checks the producers' events against the decoder without
// a stack: the shares come out as configured, every kind is sent on every
// path even in a short run, valid copies decode, and each invalid queue
// event is refused naming the field the soak will look for.
func TestGenerator(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cfg := Config{Events: 2000, Seed: 7}.withDefaults()
	g := newGenerator(cfg, func() time.Time { return now }, identity{userID: "33333333-3333-4333-8333-333333333333"})
	dups, restamped := 0, 0
	kinds := map[string]bool{}
	for range cfg.Events {
		s := g.next()
		if s.dup {
			dups++
			if !s.at.Equal(s.it.stamps[0]) {
				restamped++
			}
		}
		if s.it.kind != "" {
			kinds[s.it.path.String()+" "+s.it.kind] = true
		}
		body := s.it.encode(s.at)
		if s.it.kind == "bad-json" {
			body = []byte(s.it.body)
		}
		if s.it.path == pathHTTP {
			continue // POST /v1/events judges these (TestSoak)
		}
		events, rejected := record.Decode(body, now, usage.DefaultBackfillWindow)
		switch s.it.class {
		case classValid:
			if len(rejected) > 0 || len(events) != 1 {
				t.Fatalf("valid event %s does not decode: %+v", body, rejected)
			}
			if s.at.After(now) || s.at.Before(now.Add(-lateMax)) {
				t.Errorf("event at %s, outside [now-33d, now]", s.at)
			}
		case classInvalid:
			want := invalidField[s.it.kind]
			if len(rejected) != 1 || rejected[0].Field != want {
				t.Errorf("invalid %s event %s: rejected %+v; want field %q", s.it.kind, body, rejected, want)
			}
		}
	}
	if share := float64(dups) / float64(cfg.Events); math.Abs(share-cfg.Duplicates) > 0.03 {
		t.Errorf("duplicates %.3f of the sends; want %.2f", share, cfg.Duplicates)
	}
	if share := float64(restamped) / float64(dups); math.Abs(share-cfg.Restamp) > 0.06 {
		t.Errorf("re-stamped %.3f of the duplicates; want %.2f", share, cfg.Restamp)
	}
	for _, p := range []path{pathQueue, pathHTTP} {
		ks := append(append([]string{}, hostileKinds...), invalidQueueKinds...)
		if p == pathHTTP {
			ks = append(append([]string{}, hostileKinds...), invalidHTTPKinds...)
		}
		for _, k := range ks {
			if !kinds[p.String()+" "+k] {
				t.Errorf("no %s event sent through the %s path", k, p)
			}
		}
	}
}

func TestLongEndpoint(t *testing.T) {
	e := makeHostile("long-endpoint", usage.Event{})
	if len(e.Endpoint) != 300 || !strings.HasPrefix(e.Endpoint[255:], "€") {
		t.Errorf("long endpoint: %d bytes, %q at byte 255; want 300 bytes and € across byte 256", len(e.Endpoint), e.Endpoint[255:258])
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct{ format, want string }{
		{"stored %d times, want once", "stored … times, want once"},
		{"user %s on %s: %+v", "user … on …: …"},
		{"%q: 100%%", "…: 100…"},
	}
	for _, tt := range tests {
		if got := kindOf(tt.format); got != tt.want {
			t.Errorf("kindOf(%q) = %q; want %q", tt.format, got, tt.want)
		}
	}
}

func TestDayTotalsOverflow(t *testing.T) {
	var d dayTotals
	d.add(1, 200, math.MaxInt64, 1)
	d.add(1, 404, 1, 1)
	if d.req != -1 || d.resp != 2 || d.calls != 2 || d.e4 != 1 {
		t.Errorf("dayTotals = %+v; want request bytes overflowed (-1), response 2, calls 2, 4xx 1", d)
	}
}

func TestFunctionLogTally(t *testing.T) {
	tally := NewTally()
	w := tally.FunctionLog(nil)
	for _, line := range []string{
		`record    | {"level":"ERROR","msg":"record usage batch failed","error":"record batch of 12 events: bigint out of range (SQLSTATE 22003)"}` + "\n",
		`record    | {"level":"ERROR","msg":"record usage batch failed","error":"record batch of 7 events: bigint out of range (SQLSTATE 22003)"}` + "\n",
		`record    | {"level":"WARN","msg":"usage event quarantined","event_id":"x"}` + "\n",
		`record    | START RequestId: 1` + "\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	got := tally.Counts()
	if got["record: record usage batch failed: record batch of N events: bigint out of range (SQLSTATE N)"] != 2 ||
		got["record: usage event quarantined"] != 1 || len(got) != 2 {
		t.Errorf("Counts() = %v", got)
	}
}
