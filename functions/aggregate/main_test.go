package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

func testEnv(vars map[string]string) *env.Env {
	return env.New(context.Background(), func(k string) string { return vars[k] })
}

// TestSetup refuses bad configuration before anything connects.
func TestSetup(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, bad := range []map[string]string{
		{},
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "0"},
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "ninety"},
		{"DATABASE_URL": "::not a url::"},
	} {
		if _, err := setup(ctx, testEnv(bad), logger); err == nil {
			t.Errorf("setup(%v): no error", bad)
		}
	}
}

// TestSetupWithDatabase wires the handler to a real database.
func TestSetupWithDatabase(t *testing.T) {
	url := pgtest.NewURL(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := setup(ctx, testEnv(map[string]string{"DATABASE_URL": url}), logger)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if h.RetentionDays != usage.DefaultRetentionDays || h.Rollup == nil || h.Workers != 2 {
		t.Errorf("handler = %+v", h)
	}
	h, err = setup(ctx, testEnv(map[string]string{"DATABASE_URL": url, "RETENTION_DAYS": "30"}), logger)
	if err != nil || h.RetentionDays != 30 {
		t.Errorf("setup with RETENTION_DAYS=30: %+v, %v", h, err)
	}
}
