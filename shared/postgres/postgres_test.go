package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

// MustOpenDB returns a repository on a fresh migrated database.
func MustOpenDB(tb testing.TB) *postgres.DB {
	tb.Helper()
	return pgtest.NewDB(tb)
}

func TestMigrateIsIdempotent(t *testing.T) {
	url := pgtest.NewURL(t)
	ctx := context.Background()
	// The template already holds every migration: applying again is a no-op.
	applied, err := postgres.Migrate(ctx, url, nil)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if len(applied) != 0 {
		t.Errorf("Migrate on a migrated database applied %v; want nothing", applied)
	}
}

func TestMigrateEmptyDatabase(t *testing.T) {
	admin := pgtest.Require(t, "NEXUS_TEST_DATABASE_URL", "PostgreSQL")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("empty_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), `DROP DATABASE `+name+` WITH (FORCE)`) })
	cfg := conn.Config()
	url := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)

	first, err := postgres.Migrate(ctx, url, nil)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if len(first) == 0 || first[0] != 1 {
		t.Fatalf("first Migrate applied %v; want every migration from 1", first)
	}
	second, err := postgres.Migrate(ctx, url, nil)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if len(second) != 0 {
		t.Errorf("second Migrate applied %v; want nothing", second)
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var plans []string
	rows, _ := db.Pool.Query(ctx, `SELECT plan_id FROM eco_plans ORDER BY included_calls`)
	plans, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"free", "pro", "enterprise"}, plans); diff != "" {
		t.Errorf("seeded plans (-want +got):\n%s", diff)
	}
}

func TestPartitionRouting(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	thisMonth := time.Date(now.Year(), now.Month(), 1, 12, 0, 0, 0, time.UTC)
	nextMonth := thisMonth.AddDate(0, 1, 0)
	for i, at := range []time.Time{thisMonth, nextMonth, nextMonth.Add(time.Hour)} {
		_, err := db.Pool.Exec(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code,
			latency_ms, request_bytes, response_bytes, occurred_at)
			VALUES (gen_random_uuid(), gen_random_uuid(), 'GET /x', 'GET', 200, $1, 0, 0, $2)`, i, at)
		if err != nil {
			t.Fatalf("insert at %s: %v", at, err)
		}
	}
	rows, _ := db.Pool.Query(ctx, `SELECT tableoid::regclass::text, count(*) FROM eco_api_usage GROUP BY 1 ORDER BY 1`)
	type part struct {
		Name string
		N    int64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[part])
	if err != nil {
		t.Fatal(err)
	}
	want := []part{
		{"eco_api_usage_p" + thisMonth.Format("200601"), 1},
		{"eco_api_usage_p" + nextMonth.Format("200601"), 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows per partition (-want +got):\n%s", diff)
	}
}

func TestEnsurePartitions(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	from := time.Now().UTC().AddDate(0, 6, 0)
	s := postgres.NewRollupStore(db)
	n, err := s.EnsurePartitions(ctx, from, 2)
	if err != nil || n != 2 {
		t.Fatalf("EnsurePartitions = %d, %v; want 2 created", n, err)
	}
	n, err = s.EnsurePartitions(ctx, from, 2)
	if err != nil || n != 0 {
		t.Fatalf("EnsurePartitions again = %d, %v; want 0 created", n, err)
	}
	// A row in the new month now has a home.
	_, err = db.Pool.Exec(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code,
		latency_ms, request_bytes, response_bytes, occurred_at)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'GET /x', 'GET', 200, 1, 0, 0, $1)`, from)
	if err != nil {
		t.Fatalf("insert into new partition: %v", err)
	}
}

func TestFormatError(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()

	var x int
	err := postgres.FormatError(db.Pool.QueryRow(ctx, `SELECT 1 WHERE false`).Scan(&x))
	if usage.ErrorCode(err) != usage.CodeNotFound {
		t.Errorf("no rows: code %q (%v); want %q", usage.ErrorCode(err), err, usage.CodeNotFound)
	}

	_, err = db.Pool.Exec(ctx, `INSERT INTO eco_plans (plan_id, name, included_calls, hard_limit, rate_per_second, burst)
		VALUES ('pro', 'Again', 1, false, 1, 1)`)
	err = postgres.FormatError(err)
	if usage.ErrorCode(err) != usage.CodeConflict {
		t.Errorf("unique violation: code %q (%v); want %q", usage.ErrorCode(err), err, usage.CodeConflict)
	}
	if msg := usage.ErrorMessage(err); msg != "already exists (eco_plans_pkey)" {
		t.Errorf("unique violation message = %q; want it to name the constraint", msg)
	}

	_, err = db.Pool.Exec(ctx, `INSERT INTO eco_plans (plan_id, name, included_calls, hard_limit, rate_per_second, burst)
		VALUES ('neg', 'Neg', -1, false, 1, 1)`)
	if usage.ErrorCode(postgres.FormatError(err)) != usage.CodeInvalid {
		t.Errorf("check violation: code %q; want %q", usage.ErrorCode(postgres.FormatError(err)), usage.CodeInvalid)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = db.Pool.Exec(cctx, `SELECT 1`)
	if usage.ErrorCode(postgres.FormatError(err)) != usage.CodeUnavailable {
		t.Errorf("cancelled: code %q; want %q", usage.ErrorCode(postgres.FormatError(err)), usage.CodeUnavailable)
	}
	if !errors.Is(postgres.FormatError(err), context.Canceled) {
		t.Errorf("cancelled: cause lost")
	}

	other := errors.New("boom")
	if postgres.FormatError(other) != other || postgres.FormatError(nil) != nil {
		t.Errorf("FormatError must pass other errors and nil through")
	}
}

func TestSubscriptionRoundTrip(t *testing.T) {
	db := MustOpenDB(t)
	db.Now = func() time.Time { return time.Date(2026, 11, 27, 15, 4, 5, 0, time.UTC) }
	ctx := context.Background()
	s := postgres.NewSubscriptionStore(db)
	user := "3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607"

	got, err := s.Subscription(ctx, user)
	if err != nil {
		t.Fatalf("Subscription of an unknown user: %v", err)
	}
	if got.PlanID != usage.PlanFree || got.Effective.IncludedCalls != 1000 || !got.Effective.HardLimit {
		t.Errorf("unknown user: got %+v; want the free plan", got)
	}

	burst := 250
	sub := &usage.Subscription{
		UserID: user, PlanID: usage.PlanPro,
		Overrides:        usage.Overrides{Burst: &burst},
		StripeCustomerID: "cus_123", StripeSubscriptionID: "sub_456",
		PeriodAnchor: time.Date(2026, 1, 31, 9, 30, 0, 0, time.UTC),
	}
	if err := s.PutSubscription(ctx, sub); err != nil {
		t.Fatalf("PutSubscription: %v", err)
	}
	got, err = s.Subscription(ctx, user)
	if err != nil {
		t.Fatalf("Subscription: %v", err)
	}
	want := &usage.Subscription{
		UserID: user, PlanID: usage.PlanPro,
		Overrides: usage.Overrides{Burst: &burst},
		Effective: usage.Plan{ID: "pro", Name: "Pro", IncludedCalls: 100_000, RatePerSecond: 50, Burst: 250, PriceModel: usage.PricePackage,
			OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"},
		StripeCustomerID: "cus_123", StripeSubscriptionID: "sub_456",
		PeriodAnchor: time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), // midnight UTC
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(usage.Subscription{}, "Version")); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got.Version == "" {
		t.Error("no version")
	}
	version := got.Version

	// Replacing drops the override.
	sub.Overrides = usage.Overrides{}
	sub.PlanID = usage.PlanEnterprise
	if err := s.PutSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Subscription(ctx, user)
	if got.Effective.Burst != 1000 || got.PlanID != usage.PlanEnterprise || got.Version == version {
		t.Errorf("after replace: %+v, version %s (was %s)", got.Effective, got.Version, version)
	}

	sub.PlanID = "platinum"
	if err := s.PutSubscription(ctx, sub); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("unknown plan: %v; want %s", err, usage.CodeInvalid)
	}
	if _, err := s.Subscription(ctx, "not-a-uuid"); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("Subscription(not-a-uuid): %v; want %s", err, usage.CodeInvalid)
	}
}
