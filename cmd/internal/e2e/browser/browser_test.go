package browser

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{ms(5), 5 * time.Millisecond},
		{ms(9, 1, 5), 5 * time.Millisecond},
		{ms(9, 1, 5, 3), 4 * time.Millisecond},
	}
	for _, tt := range tests {
		in := append([]time.Duration(nil), tt.in...)
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v; want %v", in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("Median reordered its argument: %v", tt.in)
			}
		}
	}
}

func TestFind(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "chromium")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if p, err := Find(env(map[string]string{"NEXUS_CHROMIUM": exe})); p != exe || err != nil {
		t.Errorf("Find with NEXUS_CHROMIUM = %q, %v; want %q", p, err, exe)
	}
	if _, err := Find(env(map[string]string{"NEXUS_CHROMIUM": exe + "-missing"})); err == nil {
		t.Error("Find with a missing NEXUS_CHROMIUM found one")
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := Find(env(nil)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find on an empty PATH = %v; want ErrNotFound", err)
	}
}
