package billing_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/usage"
)

// The property test of billing: seeded random sequences of usage (late
// events included), plan changes, dry and real runs, crashes between the
// steps of a run, and restores of the database to an earlier dump, billed
// over PostgreSQL against the stripetest fake (stateful: it keeps the items
// and honours idempotency keys for a day, as Stripe does), every request
// validated by stripe-mock first. At the end every
// closed period is checked against a reference computation of what it owes,
// written apart from the billing code, and against the invariants of
// docs/overage.md.
//
// NEXUS_BILLING_SEQUENCES (default 2), NEXUS_BILLING_STEPS (default 25) and
// NEXUS_BILLING_SEED (default: a seed per day) size the run; a failure names
// the seed and the sequence, and NEXUS_BILLING_SEED=<seed> with
// NEXUS_BILLING_ONLY=<sequence> replays it.

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestBillingProperties(t *testing.T) {
	pgtest.Require(t, "NEXUS_TEST_DATABASE_URL", "PostgreSQL")
	seqs, steps := envInt("NEXUS_BILLING_SEQUENCES", 2), envInt("NEXUS_BILLING_STEPS", 25)
	seed := uint64(envInt("NEXUS_BILLING_SEED", int(time.Now().UTC().Unix()/86400)))
	only := envInt("NEXUS_BILLING_ONLY", 0)
	start := time.Now()
	var totalSteps int
	tally := map[string]int{}
	for i := 1; i <= seqs; i++ {
		if only != 0 && i != only {
			continue
		}
		t.Run(fmt.Sprintf("seed=%d/seq=%d", seed, i), func(t *testing.T) {
			w := newWorld(t, rand.New(rand.NewPCG(seed, uint64(i))))
			w.play(steps)
			totalSteps += w.steps
			w.settle()
			w.check()
			for k, n := range w.tally {
				tally[k] += n
			}
		})
	}
	t.Logf("billing properties: %d sequences, %d steps, %s (seed %d)", seqs, totalSteps, time.Since(start).Round(time.Millisecond), seed)
	keys := slices.Sorted(maps.Keys(tally))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, tally[k])
	}
	t.Logf("played: %s", strings.Join(parts, ", "))
}

// callsEvent is usage the world recorded: calls of a user on a day.
type callsEvent struct {
	user  string
	day   time.Time
	calls int64
}

// dump is a copy of the database taken at a step.
type dump struct {
	name   string
	events int // events applied when it was taken
	at     time.Time
}

// maxDumpAge is how old a dump the world restores may be: a recent backup,
// whose lost calls producers can still send again within the backfill
// window. (Calls lost for good cannot be billed; what Stripe holds for
// them stays as charged, a case the checks below do not model.)
const maxDumpAge = 30 * 24 * time.Hour

type world struct {
	t      *testing.T
	rng    *rand.Rand
	fake   *stripetest.Server
	name   string // the world's database
	url    string
	e      *planEnv
	faults *faultyLedger
	now    time.Time
	users  []string
	// events are the calls recorded, in order; lost are those a restore
	// took away and that are not replayed yet.
	events []callsEvent
	lost   []callsEvent
	dumps  []dump
	nDumps int
	steps  int
	log    []string
	// conflicted are the periods a run reported it could not price because
	// their rows charged in another currency than their terms now bill in:
	// a restore lost the change of terms the rows were priced with (loudly
	// not billable; an admin decides).
	conflicted map[periodKey]bool
	// tally counts what the sequence played.
	tally map[string]int
	// refusals counts plan changes refused (currency).
	refusals int
}

func newWorld(t *testing.T, rng *rand.Rand) *world {
	w := &world{t: t, rng: rng, fake: validatedFake(t), tally: map[string]int{}, conflicted: map[periodKey]bool{}}
	w.url = pgtest.NewURL(t)
	w.name = databaseName(t, w.url)
	w.fake.Now = func() time.Time { return w.now }
	w.open()
	w.now = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(72)) * time.Hour)
	for i := 1; i <= 3; i++ {
		u := userID(i)
		w.users = append(w.users, u)
		w.change(u, true)
		w.now = w.now.Add(time.Duration(1+rng.IntN(96)) * time.Hour)
	}
	// A fourth subscription comes from another system: a row inserted by
	// SQL, with negotiated terms in its columns and no terms history.
	u4 := userID(4)
	w.users = append(w.users, u4)
	if _, err := w.e.db.Pool.Exec(context.Background(), `INSERT INTO eco_subscriptions (user_id, plan_id, included_calls,
			overage_unit_size, overage_unit_price, stripe_customer_id, period_anchor)
		VALUES ($1, 'pro', 300, 10, 7, 'cus_u4', $2)`, u4, usage.Day(w.now)); err != nil {
		w.fatalf("insert a subscription: %v", err)
	}
	w.logf("subscription %s inserted by SQL: pro, 300 included, 7 per 10 calls", short(u4))
	return w
}

// backfill is the deployment's backfill window in the world: the longest
// the template allows, so that late calls come up to 45 days late.
const backfill = usage.MaxBackfillWindow

// open connects the billing run and the admin's statements to the
// world's database.
func (w *world) open() {
	db, err := postgres.Open(context.Background(), postgres.Config{URL: w.url, MaxConns: 8, NoJIT: true})
	if err != nil {
		w.t.Fatalf("open: %v", err)
	}
	ledger := postgres.NewLedgerStore(db)
	w.faults = &faultyLedger{LedgerStore: ledger}
	te := &testEnv{t: w.t, db: db, ledger: ledger}
	te.b = mustNew(w.t, billing.Config{Ledger: w.faults, Workers: 2,
		Biller: fakeBiller(w.fake.URL), Clock: func() time.Time { return w.now },
		Logger: slog.New(slog.DiscardHandler)}) // the world logs its steps
	w.e = &planEnv{testEnv: te}
	db.Now = func() time.Time { return w.now }
}

func (w *world) count(what string, n int) { w.tally[what] += n }

func (w *world) logf(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf("%s %s", w.now.Format("2006-01-02T15:04"), fmt.Sprintf(format, args...)))
}

func (w *world) fatalf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("%s\nsteps:\n  %s", fmt.Sprintf(format, args...), strings.Join(w.log, "\n  "))
}

func (w *world) play(steps int) {
	for ; w.steps < steps; w.steps++ {
		switch r := w.rng.IntN(100); {
		case r < 30:
			w.usage()
		case r < 42:
			w.change(w.users[w.rng.IntN(len(w.users))], false)
		case r < 62:
			w.advance()
		case r < 80:
			w.run()
		case r < 86:
			w.dryRun()
		case r < 91:
			w.takeDump()
		case r < 95:
			w.restore()
		default:
			w.replay()
		}
	}
}

// usage records calls for a user on a day of the backfill window, most on
// the last few days, some late.
func (w *world) usage() {
	u := w.users[w.rng.IntN(len(w.users))]
	back := w.rng.IntN(3)
	if w.rng.IntN(5) == 0 {
		back = w.rng.IntN(int(backfill / (24 * time.Hour)))
	}
	d := usage.Day(w.now).AddDate(0, 0, -back)
	n := int64(1 + w.rng.IntN(400))
	if w.rng.IntN(4) == 0 {
		n = int64(1 + w.rng.IntN(4000))
	}
	w.apply(callsEvent{u, d, n})
	w.events = append(w.events, callsEvent{u, d, n})
	w.count("usage events", 1)
	if back > 2 {
		w.count("late usage events", 1)
	}
	w.logf("usage %s %s +%d", short(u), d.Format(time.DateOnly), n)
}

func (w *world) apply(ev callsEvent) {
	if err := pgtest.AddCalls(context.Background(), w.e.db, ev.user, ev.day, ev.calls); err != nil {
		w.fatalf("record calls: %v", err)
	}
}

func short(u string) string { return "u" + strings.TrimLeft(u[len(u)-3:], "0") }

// randomTerms draws a plan and overrides.
func (w *world) randomTerms() (string, usage.Overrides) {
	r := w.rng
	plan := []string{usage.PlanPro, usage.PlanPro, usage.PlanEnterprise, usage.PlanFree}[r.IntN(4)]
	var o usage.Overrides
	inc := []int64{0, 100, 500, 1000, 2000, 5000}[r.IntN(6)]
	o.IncludedCalls = &inc
	size := []int64{1, 10, 100, 1000}[r.IntN(4)]
	o.OverageUnitSize = &size
	price := int64(r.IntN(4) * 10)
	if size == 1 {
		price = int64(r.IntN(3))
	}
	o.OverageUnitPrice = &price
	model := []string{usage.PricePerUnit, usage.PricePackage, usage.PriceGraduated, usage.PriceVolume}[r.IntN(4)]
	o.PriceModel = &model
	if model == usage.PriceGraduated || model == usage.PriceVolume {
		upTo := int64(200 + r.IntN(2000))
		o.Tiers = []usage.Tier{{UpTo: &upTo, UnitPrice: price + 10, FlatPrice: int64(r.IntN(2) * 25)}, {UnitPrice: price}}
	}
	if r.IntN(8) == 0 {
		cur := "eur"
		o.Currency = &cur
	}
	rate := float64(1 + r.IntN(100))
	o.RatePerSecond = &rate
	return plan, o
}

// change changes a user's plan: new terms, or the terms in force with
// only their rate limit changed (an "upgrade" that changes no amount).
func (w *world) change(u string, first bool) {
	ctx := context.Background()
	plan, o := w.randomTerms()
	if !first && w.rng.IntN(3) == 0 {
		sub, err := postgres.NewSubscriptionStore(w.e.db).Subscription(ctx, u)
		if err != nil {
			w.fatalf("subscription: %v", err)
		}
		if sub.Next == nil {
			plan, o = sub.PlanID, sub.Overrides
			rate := float64(1 + w.rng.IntN(100))
			o.RatePerSecond = &rate
		}
	}
	c, err := changePlan(ctx, w.e.db, u, plan, o)
	switch {
	case err != nil && usage.ErrorField(err) == "currency":
		w.refusals++
		w.count("plan changes refused (currency)", 1)
		w.logf("change %s → %s %s refused: %s", short(u), plan, describeOverrides(o), usage.ErrorMessage(err))
		return
	case err != nil:
		w.fatalf("change %s: %v", short(u), err)
	}
	if _, err := w.e.db.Pool.Exec(ctx, `UPDATE eco_subscriptions SET stripe_customer_id = 'cus_' || $2 WHERE user_id = $1`, u, short(u)); err != nil {
		w.fatalf("customer: %v", err)
	}
	w.logf("change %s → %s %s: %s at %s", short(u), plan, describeOverrides(o), c.Change, c.EffectiveAt.Format("2006-01-02T15:04"))
	w.count("plan changes", 1)
}

func describeOverrides(o usage.Overrides) string {
	if o.IncludedCalls == nil || o.PriceModel == nil || o.OverageUnitPrice == nil || o.OverageUnitSize == nil {
		return fmt.Sprintf("%+v", o)
	}
	s := fmt.Sprintf("incl=%d %s %d/%d %s", *o.IncludedCalls, *o.PriceModel, *o.OverageUnitPrice, *o.OverageUnitSize, "usd")
	if o.Currency != nil {
		s = strings.TrimSuffix(s, "usd") + *o.Currency
	}
	return s
}

// changePlan is the admin's plan change (PUT /v1/admin/users/{id}/plan).
func changePlan(ctx context.Context, db *postgres.DB, user, plan string, o usage.Overrides) (*report.PlanChanged, error) {
	return postgres.NewAnalyticsStore(db).PutPlan(ctx, report.PlanChange{UserID: user, PlanID: plan, Overrides: o, Who: "ops"})
}

// advance moves the clock on, running the daily schedule (00:30 UTC)
// whenever it passes it; now and then the schedule misses days (an outage
// of the function), up to the margin the lookback keeps beyond the
// backfill window, less a day.
func (w *world) advance() {
	d := []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour, 24 * time.Hour, 72 * time.Hour, 240 * time.Hour}[w.rng.IntN(6)]
	w.logf("advance %s", d)
	w.until(w.now.Add(d), w.rng.IntN(10) == 0)
}

// until moves the clock to t, running the daily schedule on the way; with
// outage, it misses up to the lookback's margin less a day of runs first.
func (w *world) until(t time.Time, outage bool) {
	skip := time.Time{}
	if outage {
		skip = w.now.Add(usage.BackfillMargin - 24*time.Hour)
		w.logf("no scheduled runs until %s", skip.Format("2006-01-02T15:04"))
	}
	for {
		next := usage.Day(w.now).Add(30 * time.Minute)
		if !next.After(w.now) {
			next = next.Add(24 * time.Hour)
		}
		if next.After(t) {
			break
		}
		w.now = next
		w.replayExpiring()
		if w.now.Before(skip) {
			continue
		}
		rep, err := w.e.run(w.now)
		if err != nil && !strings.Contains(err.Error(), "left pending") {
			w.fatalf("scheduled run: %v", err)
		}
		w.unpriced(rep)
		w.count("scheduled runs", 1)
		w.count("items found", rep.Found)
		w.count("items adopted", rep.Adopted)
		w.count("rows billed", rep.Billed)
	}
	w.now = t
	w.replayExpiring()
}

// replayExpiring records the lost calls whose day is about to leave the
// backfill window: producers send events again while the record path
// still takes them (a day's margin), so every call is counted once in the
// end.
func (w *world) replayExpiring() {
	limit := usage.Day(w.now).Add(-backfill + 48*time.Hour)
	var keep []callsEvent
	for _, ev := range w.lost {
		if ev.day.Before(limit) {
			w.apply(ev)
			w.events = append(w.events, ev)
			w.logf("replay a lost calls event of %s before it leaves the backfill window", ev.day.Format(time.DateOnly))
			continue
		}
		keep = append(keep, ev)
	}
	w.lost = keep
}

// run makes a real run, with a fault now and then.
func (w *world) run() {
	fault := []string{"", "", "", "crash after create", "stripe 503", "crash after insert", "mark fails", "concurrent"}[w.rng.IntN(8)]
	ctx := context.Background()
	var (
		rep billing.RunReport
		err error
	)
	switch fault {
	case "crash after create":
		rep, err = w.e.runCrashing(w.now)
	case "stripe 503":
		w.fake.FailNext(503)
		rep, err = w.e.run(w.now)
		w.fake.ClearFailures()
	case "crash after insert", "mark fails":
		w.faults.arm(fault)
		rep, err = w.e.run(w.now)
		w.faults.arm("")
	case "concurrent":
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() { _, errs[i] = w.e.b.Run(ctx, w.now) })
		}
		wg.Wait()
		err = errors.Join(errs...)
	default:
		rep, err = w.e.run(w.now)
	}
	w.logf("run %s: planned %d, billed %d, found %d, adopted %d, replanned %d, failed %d, unpriced %d, err %v", fault, rep.PlannedRows,
		rep.Billed, rep.Found, rep.Adopted, rep.Replanned, rep.Failed, rep.Unpriced, err)
	w.count("real runs", 1)
	if fault != "" {
		w.count("runs with a fault", 1)
	}
	w.count("items found", rep.Found)
	w.count("items adopted", rep.Adopted)
	w.count("rows billed", rep.Billed)
	w.unpriced(rep)
	if rep.Duplicates > 0 {
		w.fatalf("run: %d duplicate items found", rep.Duplicates)
	}
	if fault == "" && err != nil && !strings.Contains(err.Error(), "left pending") {
		w.fatalf("run without a fault: %v", err)
	}
}

// unpriced fails the sequence on any subscription a run could not price,
// but for periods whose rows charged in another currency than their terms
// now bill in (after a restore lost the change of terms), which it notes.
func (w *world) unpriced(rep billing.RunReport) {
	for _, u := range rep.UnpricedSubscriptions {
		var start string
		if _, err := fmt.Sscanf(u.Reason, "the period from %10s:", &start); err == nil && strings.Contains(u.Reason, "its terms now bill in") {
			day, _ := time.Parse(time.DateOnly, start)
			w.conflicted[periodKey{u.UserID, day}] = true
			w.logf("unpriced %s: %s", short(u.UserID), u.Reason)
			w.count("periods charged in another currency than their terms (reported)", 1)
			continue
		}
		w.fatalf("run: a subscription not priced: %+v", u)
	}
}

// dryRun runs dry and checks that it wrote nothing a real run reads.
func (w *world) dryRun() {
	before := w.ledgerState()
	rep, err := w.e.dryRun(w.now)
	if err != nil {
		w.fatalf("dry run: %v", err)
	}
	if after := w.ledgerState(); after != before {
		w.fatalf("a dry run changed the ledger:\n%s\n→\n%s", before, after)
	}
	w.logf("dry run: %d rows due %v", rep.PlannedRows, rep.Due)
	w.count("dry runs", 1)
}

// ledgerState is the ledger and the progress as text.
func (w *world) ledgerState() string {
	var s string
	err := w.e.db.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(format('%s %s %s %s %s', user_id, period_start, seq, status, amount), E'\n' ORDER BY user_id, period_start, seq), '')
		|| (SELECT coalesce(string_agg(format('%s %s', user_id, closed_through), E'\n' ORDER BY user_id), '') FROM eco_overage_progress)
		FROM eco_overage_ledger`).Scan(&s)
	if err != nil {
		w.fatalf("ledger state: %v", err)
	}
	return s
}

// takeDump copies the database (CREATE DATABASE … TEMPLATE, which needs
// every connection to it closed).
func (w *world) takeDump() {
	name := fmt.Sprintf("%s_d%d", w.name, w.nDumps)
	w.nDumps++
	w.e.db.Close()
	adminExec(w.t, fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, name, w.name))
	w.t.Cleanup(func() { adminExec(w.t, fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)) })
	w.dumps = append(w.dumps, dump{name: name, events: len(w.events), at: w.now})
	w.open()
	w.logf("dump %d", len(w.dumps)-1)
	w.count("dumps", 1)
}

// restore replaces the database with an earlier dump. The calls recorded
// since are lost from it; they come back (replay) later, as producers send
// them again.
func (w *world) restore() {
	first := slices.IndexFunc(w.dumps, func(d dump) bool { return w.now.Sub(d.at) <= maxDumpAge })
	if first < 0 {
		return
	}
	i := first + w.rng.IntN(len(w.dumps)-first)
	d := w.dumps[i]
	w.e.db.Close()
	adminExec(w.t, fmt.Sprintf(`DROP DATABASE %q WITH (FORCE)`, w.name))
	adminExec(w.t, fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, w.name, d.name))
	w.open()
	// The calls recorded after the dump are gone, and so are those replayed
	// after it.
	w.lost = append(slices.Clone(w.events[d.events:]), w.lost...)
	w.events = slices.Clone(w.events[:d.events])
	// Later dumps hold calls this database no longer has; they go.
	w.dumps = w.dumps[:i+1]
	w.logf("restore dump %d (%d calls events lost)", i, len(w.lost))
	w.count("restores", 1)
}

// replay records the lost calls again.
func (w *world) replay() {
	for _, ev := range w.lost {
		w.apply(ev)
		w.events = append(w.events, ev)
	}
	if len(w.lost) > 0 {
		w.logf("replay %d lost calls events", len(w.lost))
	}
	w.lost = nil
}

// settle replays what was lost, lets every period with usage close and
// runs until nothing is left to do.
func (w *world) settle() {
	w.replay()
	var last time.Time
	for _, u := range w.users {
		sub, err := postgres.NewSubscriptionStore(w.e.db).Subscription(context.Background(), u)
		if err != nil {
			w.fatalf("subscription: %v", err)
		}
		if end := usage.PeriodAt(sub.PeriodAnchor, w.now).End; end.After(last) {
			last = end
		}
	}
	w.logf("settle")
	w.until(last.Add(billing.DefaultGrace+time.Hour), false)
	for i := 0; i < 3; i++ {
		rep, err := w.e.run(w.now)
		if err != nil {
			w.fatalf("settling run: %v", err)
		}
		w.unpriced(rep)
		w.now = w.now.Add(time.Hour)
	}
}

// faultyLedger fails one step of a run on demand: after the rows are
// inserted (the run stops before billing), or the marks of a billed batch
// (the items exist, the rows stay pending and leased).
type faultyLedger struct {
	billing.LedgerStore
	mu    sync.Mutex
	fault string
}

func (f *faultyLedger) arm(fault string) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

func (f *faultyLedger) take(fault string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fault == fault {
		f.fault = ""
		return true
	}
	return false
}

var errInjected = errors.New("injected failure")

func (f *faultyLedger) InsertLedgerEntries(ctx context.Context, es []*billing.LedgerEntry, pr []billing.Progress, now time.Time) (int, error) {
	n, err := f.LedgerStore.InsertLedgerEntries(ctx, es, pr, now)
	if err == nil && f.take("crash after insert") {
		return 0, errInjected
	}
	return n, err
}

func (f *faultyLedger) MarkBilled(ctx context.Context, items []billing.Billed, now time.Time) error {
	if len(items) > 0 && f.take("mark fails") {
		return errInjected
	}
	return f.LedgerStore.MarkBilled(ctx, items, now)
}

// ---- the check ----

type periodKey struct {
	user  string
	start time.Time
}

type ledgerRow struct {
	seq      int
	status   string
	amount   int64
	currency string
	stripeID string
}

func (w *world) check() {
	ctx := context.Background()
	// Stripe: at most one item per (user, period, seq), each one billed
	// on its row with its amount.
	items := map[string][]stripetest.Item{}
	stripeSum := map[periodKey]int64{}
	for _, it := range w.fake.Items() {
		k := it.Metadata["user_id"] + " " + it.Metadata["period_start"] + " " + it.Metadata["seq"]
		items[k] = append(items[k], it)
	}
	rows := map[periodKey][]ledgerRow{}
	q, err := w.e.db.Pool.Query(ctx, `SELECT user_id::text, period_start, seq, status, amount, currency, coalesce(stripe_object_id, '')
		FROM eco_overage_ledger ORDER BY user_id, period_start, seq`)
	if err != nil {
		w.fatalf("ledger: %v", err)
	}
	for q.Next() {
		var (
			k periodKey
			r ledgerRow
		)
		if err := q.Scan(&k.user, &k.start, &r.seq, &r.status, &r.amount, &r.currency, &r.stripeID); err != nil {
			w.fatalf("ledger: %v", err)
		}
		k.start = k.start.UTC()
		rows[k] = append(rows[k], r)
	}
	if q.Err() != nil {
		w.fatalf("ledger: %v", q.Err())
	}
	billedItems := map[string]ledgerRow{}
	for k, rs := range rows {
		for _, r := range rs {
			if r.stripeID != "" {
				billedItems[r.stripeID] = r
			}
			_ = k
		}
	}
	var problems []string
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		its := items[k]
		if len(its) > 1 {
			var amounts []string
			for _, it := range its {
				amounts = append(amounts, fmt.Sprintf("%s %d %s", it.ID, it.Amount, it.Currency))
			}
			problems = append(problems, fmt.Sprintf("%d Stripe items for (user, period, seq) %s: %s", len(its), k, strings.Join(amounts, ", ")))
		}
		for _, it := range its {
			start, _ := time.Parse(time.DateOnly, it.Metadata["period_start"])
			stripeSum[periodKey{it.Metadata["user_id"], start}] += it.Amount
			r, ok := billedItems[it.ID]
			if !ok || r.amount != it.Amount {
				problems = append(problems, fmt.Sprintf("Stripe item %s (%s, %d %s) is not a billed ledger row with its amount (row %+v)", it.ID, k, it.Amount, it.Currency, r))
			}
		}
	}
	// Every closed period: the rows account for what the reference says it
	// owes, in one currency, and Stripe holds what the billed rows say.
	cutoff := w.now.Add(-billing.DefaultGrace)
	calls := map[periodKey]map[time.Time]int64{}
	for _, u := range w.users {
		hist, err := postgres.NewSubscriptionStore(w.e.db).History(ctx, u)
		if err != nil {
			w.fatalf("history: %v", err)
		}
		sub, err := postgres.NewSubscriptionStore(w.e.db).Subscription(ctx, u)
		if err != nil {
			w.fatalf("subscription: %v", err)
		}
		days := map[time.Time]int64{}
		for _, ev := range w.events {
			if ev.user == u {
				days[ev.day] += ev.calls
			}
		}
		for p := usage.PeriodAt(sub.PeriodAnchor, sub.PeriodAnchor); !p.End.After(cutoff); p = usage.PeriodAt(sub.PeriodAnchor, p.End) {
			k := periodKey{u, p.Start}
			pd := map[time.Time]int64{}
			for d, n := range days {
				if p.Contains(d) {
					pd[d] = n
				}
			}
			calls[k] = pd
			owed, cur, reason := referenceOwed(p, hist, pd)
			var recorded, billed int64
			currencies := map[string]bool{}
			var last *ledgerRow
			for i, r := range rows[k] {
				if r.amount != 0 {
					currencies[r.currency] = true
				}
				switch r.status {
				case billing.LedgerBilled:
					billed += r.amount
					recorded += r.amount
				case billing.LedgerPending, billing.LedgerFailed:
					recorded += r.amount
					problems = append(problems, fmt.Sprintf("%s %s: row %d is %s after settling", short(u), p.Start.Format(time.DateOnly), r.seq, r.status))
				}
				last = &rows[k][i]
			}
			what := fmt.Sprintf("%s period %s", short(u), p.Start.Format(time.DateOnly))
			switch {
			case w.conflicted[k]:
				// Reported, not priced: an admin decides.
			case reason != "":
				problems = append(problems, fmt.Sprintf("%s: %s (calls %v; recorded %d)", what, reason, pd, recorded))
			case recorded == owed:
			case recorded > owed && last != nil && last.status == billing.LedgerSkipped && last.amount == owed-recorded:
				// A credit for an admin, recorded.
			default:
				problems = append(problems, fmt.Sprintf("%s owes %d %s (reference), its rows account for %d; rows %+v; %s", what, owed, cur, recorded, rows[k],
					w.debugPeriod(u, p, hist, pd)))
			}
			if !w.conflicted[k] && (len(currencies) > 1 || (owed > 0 && !currencies[cur])) {
				problems = append(problems, fmt.Sprintf("%s: rows in %v; the period bills in %s", what, currencies, cur))
			}
			if billed != stripeSum[k] {
				problems = append(problems, fmt.Sprintf("%s: billed rows %d, Stripe items %d", what, billed, stripeSum[k]))
			}
			problems = append(problems, checkInvariants(what, p, hist, pd)...)
		}
	}
	if len(problems) > 0 {
		w.t.Errorf("%d problems:\n  %s\nsteps:\n  %s", len(problems), strings.Join(problems, "\n  "), strings.Join(w.log, "\n  "))
	}
}

// debugPeriod says what the database holds for a period and what the
// billing code makes of it.
func (w *world) debugPeriod(u string, p usage.Period, hist []usage.Terms, pd map[time.Time]int64) string {
	var db []usage.DayCalls
	rows, _ := w.e.db.Pool.Query(context.Background(), `SELECT day, calls FROM eco_usage_counters WHERE user_id = $1 AND day >= $2 AND day < $3 ORDER BY day`,
		u, p.Start, p.End)
	for rows.Next() {
		var d usage.DayCalls
		_ = rows.Scan(&d.Day, &d.Calls)
		d.Day = d.Day.UTC()
		db = append(db, d)
	}
	lines, err := usage.PriceLines(p, usage.Segments(p, hist), db, nil, p.End)
	c, err2 := usage.NewPeriodCharge(lines)
	var progress time.Time
	_ = w.e.db.Pool.QueryRow(context.Background(), `SELECT closed_through FROM eco_overage_progress WHERE user_id = $1`, u).Scan(&progress)
	plan := ""
	subs, _ := w.e.ledger.BillableSubscriptions(context.Background())
	for _, sub := range subs {
		if sub.UserID != u {
			continue
		}
		due := billing.DuePeriods(sub, w.now, billing.DefaultGrace, billing.DefaultLookback)
		sts, err := w.e.ledger.PeriodStates(context.Background(), []billing.UserPeriod{{UserID: u, Period: p, ByDay: true}})
		if err != nil {
			return err.Error()
		}
		e, err := w.e.b.DraftPeriod(sub, sts[0], w.now)
		plan = fmt.Sprintf("due %v; state %+v; plan %+v, %v", due, sts[0], e, err)
	}
	var raw string
	_ = w.e.db.Pool.QueryRow(context.Background(), `SELECT string_agg(seq || ': ' || coalesce(lines::text, 'NULL') || ' ' || coalesce(note, ''), E'\n') FROM eco_overage_ledger
		WHERE user_id = $1 AND period_start = $2`, u, p.Start).Scan(&raw)
	return fmt.Sprintf("database days %v (model %v); priced %d (%v %v); progress %s; %s\nrows:\n%s", db, pd, c.Amount, err, err2, progress, plan, raw)
}

// ---- the reference ----

// billingTerms are what a day's terms charge: whether they bill, the
// period's included calls and the price.
type billingTerms struct {
	bills    bool
	included int64
	price    usage.Price
}

func termsOf(t usage.Terms) billingTerms {
	p := t.Effective
	return billingTerms{bills: p.Bills(), included: p.IncludedCalls, price: p.Price()}
}

func (a billingTerms) equal(b billingTerms) bool {
	return a.bills == b.bills && a.included == b.included && a.price.Model == b.price.Model && a.price.UnitSize == b.price.UnitSize &&
		a.price.UnitPrice == b.price.UnitPrice && a.price.Currency == b.price.Currency && slices.EqualFunc(a.price.Tiers, b.price.Tiers,
		func(x, y usage.Tier) bool {
			return x.UnitPrice == y.UnitPrice && x.FlatPrice == y.FlatPrice && (x.UpTo == nil) == (y.UpTo == nil) && (x.UpTo == nil || *x.UpTo == *y.UpTo)
		})
}

// termsOn returns the terms in force on day d: the last entry of the
// history made on or before that day (a change's day goes to it; of two
// changes on one day, the later).
func termsOn(hist []usage.Terms, d time.Time) (billingTerms, bool) {
	var out billingTerms
	found := false
	for _, t := range hist {
		if !usage.Day(t.From).After(d) {
			out, found = termsOf(t), true
		}
	}
	return out, found
}

// referenceOwed says what a period owes under the rules of
// docs/overage.md, worked out day by day: the period's calls are counted
// in order; a call is billable when the calls of the period up to it
// exceed the included calls of the terms in force on its day plus the
// calls already billable (so a call billable stays billable, and an
// allowance that grows does not make earlier calls free again); each
// billable call is priced under its day's terms as the n-th billable call
// of the period (so tiers count the whole period). It returns the amount
// and the currency, or why the period cannot be billed.
func referenceOwed(p usage.Period, hist []usage.Terms, days map[time.Time]int64) (int64, string, string) {
	var (
		used, billable int64
		amount         int64
		currency       string
		run            *billingTerms
		runFrom        int64 // billable calls when the run of equal terms began
	)
	closeRun := func() {
		if run != nil && run.bills {
			// A run of days never charges below nothing: a volume price's
			// total can fall, crediting no call billed under other terms.
			amount += max(0, refPrice(run.price, billable)-refPrice(run.price, runFrom))
		}
	}
	for d := p.Start; d.Before(p.End); d = d.AddDate(0, 0, 1) {
		n := days[d]
		bt, ok := termsOn(hist, d)
		if !ok {
			if n > 0 {
				return 0, "", fmt.Sprintf("calls on %s, before any terms", d.Format(time.DateOnly))
			}
			continue
		}
		if run == nil || !run.equal(bt) {
			closeRun()
			run, runFrom = &bt, billable
			if bt.bills {
				if currency != "" && currency != bt.price.Currency {
					return 0, "", fmt.Sprintf("the period bills in %s and %s", currency, bt.price.Currency)
				}
				currency = bt.price.Currency
			}
		}
		// Calls one at a time: the k-th call of the period is billable when
		// k > included + billable so far.
		for i := int64(0); i < n; i++ {
			used++
			if used > bt.included+billable {
				billable++
			}
		}
	}
	closeRun()
	return amount, currency, ""
}

// refPrice is what b billable calls cost under a price, as the tables of
// docs/overage.md work it out: exact sums over the unit size, rounded
// half up once.
func refPrice(pr usage.Price, b int64) int64 {
	if b <= 0 {
		return 0
	}
	round := func(num int64) int64 { return (2*num + pr.UnitSize) / (2 * pr.UnitSize) }
	switch pr.Model {
	case usage.PricePerUnit:
		return round(b * pr.UnitPrice)
	case usage.PricePackage:
		return (b + pr.UnitSize - 1) / pr.UnitSize * pr.UnitPrice
	case usage.PriceGraduated:
		var num, lo int64
		for _, t := range pr.Tiers {
			hi := b
			if t.UpTo != nil && *t.UpTo < b {
				hi = *t.UpTo
			}
			if hi <= lo {
				break
			}
			num += (hi-lo)*t.UnitPrice + t.FlatPrice*pr.UnitSize
			lo = hi
		}
		return round(num)
	case usage.PriceVolume:
		for _, t := range pr.Tiers {
			if t.UpTo == nil || b <= *t.UpTo {
				return round(b*t.UnitPrice + t.FlatPrice*pr.UnitSize)
			}
		}
	}
	panic("unknown price model " + pr.Model)
}

// checkInvariants checks the billing code's pricing of a period against
// the invariants of docs/overage.md, whatever the reference says:
//   - a change that leaves the included calls and the price alone changes
//     no amount: the period priced without such entries costs the same;
//   - the usage before a change costs no more than the terms in force then
//     would charge for it over the whole period.
func checkInvariants(what string, p usage.Period, hist []usage.Terms, days map[time.Time]int64) []string {
	var dc []usage.DayCalls
	for d, n := range days {
		dc = append(dc, usage.DayCalls{Day: d, Calls: n})
	}
	slices.SortFunc(dc, func(a, b usage.DayCalls) int { return a.Day.Compare(b.Day) })
	price := func(h []usage.Terms, until time.Time) (int64, error) {
		lines, err := usage.PriceLines(p, usage.Segments(p, h), dc, nil, until)
		if err != nil {
			return 0, err
		}
		c, err := usage.NewPeriodCharge(lines)
		return c.Amount, err
	}
	var out []string
	all, err := price(hist, p.End)
	if err != nil {
		return nil // reported by the reference
	}
	// Without the entries that change no billing terms.
	var kept []usage.Terms
	for _, t := range hist {
		if len(kept) > 0 && termsOf(kept[len(kept)-1]).equal(termsOf(t)) {
			continue
		}
		kept = append(kept, t)
	}
	if len(kept) != len(hist) {
		if a, err := price(kept, p.End); err == nil && a != all {
			out = append(out, fmt.Sprintf("%s: %d with its changes of rate limits alone, %d without them", what, all, a))
		}
	}
	// Each change inside the period: the calls before it cost no more than
	// they would have had the change not been made (the terms then in force
	// kept to the period's end).
	for i, t := range hist {
		d := usage.Day(t.From)
		if i == 0 || !d.After(p.Start) || !d.Before(p.End) {
			continue
		}
		charged, err := price(hist, d)
		if err != nil {
			continue
		}
		var prev []usage.Terms
		for _, h := range hist {
			if usage.Day(h.From).Before(d) {
				prev = append(prev, h)
			}
		}
		var early []usage.DayCalls
		for _, c := range dc {
			if c.Day.Before(d) {
				early = append(early, c)
			}
		}
		lines, err := usage.PriceLines(p, usage.Segments(p, prev), early, nil, p.End)
		if err != nil {
			continue
		}
		unchanged, err := usage.NewPeriodCharge(lines)
		if err != nil {
			continue
		}
		if charged > unchanged.Amount {
			out = append(out, fmt.Sprintf("%s: the calls before the change of %s cost %d; without the change, %d",
				what, d.Format(time.DateOnly), charged, unchanged.Amount))
		}
	}
	return out
}
