package usage_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/usage"
)

func TestKeyGeneration(t *testing.T) {
	const day = 24 * time.Hour
	epoch := time.Unix(0, 0).UTC()
	tests := []struct {
		at   time.Time
		want int
	}{
		{epoch, 0},
		{epoch.Add(50*day - time.Nanosecond), 0},
		{epoch.Add(50 * day), 1},
		{epoch.Add(-time.Second), -1},
		{time.Date(2031, 6, 15, 12, 0, 0, 0, time.UTC), 448}, // day 22,445 of the epoch
	}
	for _, tt := range tests {
		if got := usage.KeyGeneration(tt.at); got != tt.want {
			t.Errorf("KeyGeneration(%s) = %d; want %d", tt.at, got, tt.want)
		}
	}
}

// TestKeyGenerations: one generation, or both neighbours within the
// overlap of a boundary; the older generation checked is always the one
// before the first written, so a key stored up to DedupeWindow earlier is
// found.
func TestKeyGenerations(t *testing.T) {
	boundary := time.Unix(0, 0).UTC().Add(448 * usage.DedupeWindow)
	tests := []struct {
		name  string
		at    time.Time
		write []int
		older int
	}{
		{"middle", boundary.Add(20 * 24 * time.Hour), []int{448}, 447},
		{"just before a boundary", boundary.Add(-time.Minute), []int{447, 448}, 446},
		{"just after", boundary.Add(time.Minute), []int{447, 448}, 446},
		{"past the overlap", boundary.Add(usage.KeyGenerationOverlap + time.Second), []int{448}, 447},
	}
	for _, tt := range tests {
		write, older := usage.KeyGenerations(tt.at)
		if !slices.Equal(write, tt.write) || older != tt.older {
			t.Errorf("%s: KeyGenerations = %v, %d; want %v, %d", tt.name, write, older, tt.write, tt.older)
		}
	}
	// Every key stored within DedupeWindow is in a generation read later.
	for stored := boundary.Add(-3 * usage.DedupeWindow); stored.Before(boundary.Add(usage.DedupeWindow)); stored = stored.Add(7 * time.Hour) {
		g := usage.KeyGeneration(stored)
		for _, later := range []time.Duration{0, time.Hour, 25 * 24 * time.Hour, usage.DedupeWindow} {
			write, older := usage.KeyGenerations(stored.Add(later))
			if g < older || g > write[len(write)-1] {
				t.Fatalf("key stored at %s (generation %d) not read %s later (%v, %d)", stored, g, later, write, older)
			}
		}
		// And it outlives the window before it may be dropped.
		if usage.OldestKeyGeneration(stored.Add(usage.DedupeWindow)) > g {
			t.Fatalf("generation %d of %s dropped before DedupeWindow passed", g, stored)
		}
	}
	// Nothing the record path reads, with a clock up to the overlap ahead,
	// is dropped.
	at := boundary.Add(30 * time.Minute)
	if _, older := usage.KeyGenerations(at.Add(-usage.KeyGenerationOverlap + time.Second)); usage.OldestKeyGeneration(at) > older {
		t.Errorf("OldestKeyGeneration(%s) = %d drops generation %d still read", at, usage.OldestKeyGeneration(at), older)
	}
}

func TestCheckRetention(t *testing.T) {
	tests := []struct {
		days     int
		backfill time.Duration
		ok       bool
	}{
		{90, usage.DefaultBackfillWindow, true},
		{40, usage.DefaultBackfillWindow, true},
		{39, usage.DefaultBackfillWindow, false},
		{1, time.Hour, false},
		{6, time.Hour, true}, // 1 h + 5 days, rounded up
		{50, usage.MaxBackfillWindow, true},
		{49, usage.MaxBackfillWindow, false},
	}
	for _, tt := range tests {
		err := usage.CheckRetention(tt.days, tt.backfill)
		if (err == nil) != tt.ok {
			t.Errorf("CheckRetention(%d, %s) = %v; want ok %v", tt.days, tt.backfill, err, tt.ok)
		}
		if err != nil && (usage.ErrorCode(err) != usage.CodeInvalid || !strings.Contains(usage.ErrorMessage(err), "at least")) {
			t.Errorf("CheckRetention(%d, %s) = %v; want CodeInvalid saying how many days", tt.days, tt.backfill, err)
		}
	}
}

func TestCheckBackfillWindow(t *testing.T) {
	for d, ok := range map[time.Duration]bool{
		0: false, -time.Hour: false, time.Hour: true, usage.DefaultBackfillWindow: true,
		usage.MaxBackfillWindow: true, usage.MaxBackfillWindow + time.Second: false,
	} {
		if err := usage.CheckBackfillWindow(d); (err == nil) != ok {
			t.Errorf("CheckBackfillWindow(%s) = %v; want ok %v", d, err, ok)
		}
	}
}
