package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Billing run defaults.
const (
	// DefaultGrace is how long after a period ends it is closed: late events
	// may still arrive.
	DefaultGrace = 24 * time.Hour
	// DefaultLookback bounds how far back closed periods are reconsidered
	// for late usage: a period that ended longer ago cannot receive events
	// any more (35-day backfill window, plus the grace period and a margin).
	DefaultLookback = 40 * 24 * time.Hour
	// DefaultKeyWindow is the age of a pending row after which it is looked
	// up in Stripe by metadata before being sent again: Stripe keeps
	// idempotency keys for at least 24 hours; an hour's margin is taken.
	DefaultKeyWindow   = 23 * time.Hour
	DefaultMaxAttempts = 10
	DefaultLease       = 15 * time.Minute
	DefaultWorkers     = 4
	DefaultBatch       = 100
)

// ClosablePeriods returns the billing periods of a subscription anchored at
// anchor that ended at least grace before now and less than lookback before
// now, oldest first. Periods starting before the anchor are never returned.
func ClosablePeriods(anchor, now time.Time, grace, lookback time.Duration) []Period {
	cutoff := now.Add(-grace)
	oldest := now.Add(-lookback)
	var out []Period
	p := PeriodBefore(anchor, PeriodAt(anchor, cutoff))
	for !p.End.Before(oldest) && !p.Start.Before(anchor.UTC()) {
		if p.End.After(cutoff) {
			break
		}
		out = append(out, p)
		p = PeriodBefore(anchor, p)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// PlanEntry decides the ledger row a closed period needs, or nil when the
// ledger is up to date:
//   - no row yet: the period's charge (seq 0), pending, or skipped when
//     there is nothing to charge;
//   - rows exist: the newly computed charge, priced with the seq 0 row's
//     terms, minus everything recorded so far. A positive difference is a
//     pending adjustment with the next seq; a negative one is a skipped row
//     with a negative amount and a note, a credit for an admin to decide on.
//
// Pending rows become dry_run rows when dryRun is set.
func PlanEntry(sub *Subscription, st PeriodState, dryRun bool) *LedgerEntry {
	plan := sub.Effective
	seq := 0
	if st.Rows > 0 {
		if st.Base == nil {
			return nil
		}
		plan = Plan{ID: sub.PlanID, IncludedCalls: st.Base.Included, OverageUnitSize: st.Base.UnitSize,
			OverageUnitPrice: st.Base.UnitPrice, Currency: st.Base.Currency}
		seq = st.MaxSeq + 1
	}
	o := ComputeOverage(plan, st.Used)
	e := &LedgerEntry{
		UserID: st.UserID, Period: st.Period, Seq: seq,
		Included: o.Included, Used: o.Used, UnitSize: o.UnitSize, UnitPrice: o.UnitPrice, Currency: o.Currency,
		Units: o.Units - st.Units, Amount: o.Amount - st.Amount,
		IdempotencyKey: IdempotencyKey(st.UserID, st.Period.Start, seq),
	}
	switch {
	case seq > 0 && e.Amount == 0:
		return nil
	case e.Amount > 0 && dryRun:
		e.Status = LedgerDryRun
	case e.Amount > 0:
		e.Status = LedgerPending
	case e.Amount == 0:
		e.Status = LedgerSkipped
		e.Note = "no usage above the included calls"
	default:
		e.Status = LedgerSkipped
		e.Note = fmt.Sprintf("usage fell to %d calls after %d %s was charged; credit of %d %s not issued automatically, review",
			st.Used, st.Amount, o.Currency, -e.Amount, o.Currency)
	}
	return e
}

// Billing closes billing periods and bills their overage exactly once: the
// ledger row is written first, then the invoice item is created with the
// row's idempotency key, then the row is marked billed. Runs may overlap;
// the store's claims keep each row with one run at a time, and the key
// makes a repeated call after a crash harmless.
type Billing struct {
	Ledger LedgerStore
	// Biller is nil for a dry run: rows are written as dry_run, nothing is
	// sent.
	Biller Biller
	Logger *slog.Logger

	Grace       time.Duration
	Lookback    time.Duration
	KeyWindow   time.Duration
	MaxAttempts int
	Lease       time.Duration
	Workers     int
	Batch       int
}

// RunReport says what a run did.
type RunReport struct {
	RunID         string        `json:"run_id"`
	DryRun        bool          `json:"dry_run"`
	Subscriptions int           `json:"subscriptions"`
	Periods       int           `json:"periods"`
	Inserted      int           `json:"inserted"`
	Billed        int           `json:"billed"`
	Found         int           `json:"found"`
	Retry         int           `json:"retry"`
	Failed        int           `json:"failed"`
	StripeCalls   int           `json:"stripe_calls"`
	PlanTime      time.Duration `json:"-"`
	BillTime      time.Duration `json:"-"`
}

// MarshalJSON writes the report with its durations in milliseconds
// (plan_ms, bill_ms), as the aggregate run reports duration_ms.
func (r RunReport) MarshalJSON() ([]byte, error) {
	type fields RunReport
	return json.Marshal(struct {
		fields
		PlanMS int64 `json:"plan_ms"`
		BillMS int64 `json:"bill_ms"`
	}{fields(r), r.PlanTime.Milliseconds(), r.BillTime.Milliseconds()})
}

func (b *Billing) withDefaults() Billing {
	c := *b
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.Lookback <= 0 {
		c.Lookback = DefaultLookback
	}
	if c.KeyWindow <= 0 {
		c.KeyWindow = DefaultKeyWindow
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Run closes the periods closable at now and bills the pending rows. It
// returns an error only when the run should be retried: the store failed,
// the provider refused the credentials, or rows stayed pending after
// retryable provider errors (CodeUnavailable). Permanent per-row failures
// are recorded on the rows and logged; the run goes on.
func (b *Billing) Run(ctx context.Context, now time.Time) (RunReport, error) {
	c := b.withDefaults()
	now = now.UTC()
	rep := RunReport{RunID: newRunID(), DryRun: c.Biller == nil}

	start := time.Now()
	if err := c.plan(ctx, now, &rep); err != nil {
		return rep, err
	}
	rep.PlanTime = time.Since(start)
	if c.Biller == nil {
		return rep, nil
	}
	start = time.Now()
	err := c.bill(ctx, now, &rep)
	rep.BillTime = time.Since(start)
	if err != nil {
		return rep, err
	}
	if rep.Retry > 0 {
		return rep, Errorf(CodeUnavailable, "%d overage items left pending after retryable errors", rep.Retry)
	}
	return rep, nil
}

// plan writes the ledger rows the closed periods need.
func (c *Billing) plan(ctx context.Context, now time.Time, rep *RunReport) error {
	subs, err := c.Ledger.BillableSubscriptions(ctx)
	if err != nil {
		return fmt.Errorf("list billable subscriptions: %w", err)
	}
	rep.Subscriptions = len(subs)
	var (
		periods []UserPeriod
		owners  []*Subscription
	)
	for _, s := range subs {
		for _, p := range ClosablePeriods(s.PeriodAnchor, now, c.Grace, c.Lookback) {
			periods = append(periods, UserPeriod{UserID: s.UserID, Period: p})
			owners = append(owners, s)
		}
	}
	rep.Periods = len(periods)
	if len(periods) == 0 {
		return nil
	}
	states, err := c.Ledger.PeriodStates(ctx, periods)
	if err != nil {
		return fmt.Errorf("read period states: %w", err)
	}
	var entries []*LedgerEntry
	for i, st := range states {
		if e := PlanEntry(owners[i], st, c.Biller == nil); e != nil {
			entries = append(entries, e)
		}
	}
	n, err := c.Ledger.InsertLedgerEntries(ctx, entries, now)
	if err != nil {
		return fmt.Errorf("insert ledger entries: %w", err)
	}
	rep.Inserted = n
	return nil
}

// bill claims pending rows in batches and bills them with c.Workers
// workers. The rows billed in a batch are marked in one statement after the
// batch: a crash before that leaves them pending, and the next run's calls
// with the same keys return the same items.
func (c *Billing) bill(parent context.Context, now time.Time, rep *RunReport) error {
	var mu sync.Mutex
	for {
		batch, err := c.Ledger.ClaimPending(parent, ClaimRequest{Owner: rep.RunID, Now: now, Lease: c.Lease, Limit: c.Batch})
		if err != nil {
			return fmt.Errorf("claim pending ledger rows: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		ctx, cancel := context.WithCancelCause(parent)
		work := make(chan *LedgerEntry)
		var (
			wg     sync.WaitGroup
			billed []Billed
		)
		for range min(c.Workers, len(batch)) {
			wg.Go(func() {
				for e := range work {
					if ctx.Err() != nil {
						continue // the run is stopping: leave the row to its lease
					}
					var r RunReport
					id, err := c.billOne(ctx, now, e, &r)
					if err != nil {
						cancel(err)
					}
					mu.Lock()
					if id != "" {
						billed = append(billed, Billed{LedgerID: e.ID, StripeID: id})
					}
					rep.Found += r.Found
					rep.Retry += r.Retry
					rep.Failed += r.Failed
					rep.StripeCalls += r.StripeCalls
					mu.Unlock()
				}
			})
		}
	feed:
		for _, e := range batch {
			select {
			case work <- e:
			case <-ctx.Done():
				break feed
			}
		}
		close(work)
		wg.Wait()
		err = context.Cause(ctx)
		cancel(nil)
		// Record what was billed even when the run is stopping.
		if merr := c.Ledger.MarkBilled(parent, billed, now); merr != nil {
			return fmt.Errorf("mark %d ledger rows billed: %w", len(billed), merr)
		}
		rep.Billed += len(billed)
		if err != nil {
			return err
		}
	}
}

// billOne bills one claimed row and returns the invoice item's id to record
// as billed ("" when the row was not billed). It returns an error only when
// the run must stop.
func (c *Billing) billOne(ctx context.Context, now time.Time, e *LedgerEntry, rep *RunReport) (string, error) {
	log := c.Logger.With("ledger_id", e.ID, "user_id", e.UserID, "period_start", e.Period.Start.Format(time.DateOnly), "seq", e.Seq)
	fail := func(reason string) error {
		rep.Failed++
		log.ErrorContext(ctx, "overage item failed", "reason", reason, "attempts", e.Attempts)
		if err := c.Ledger.MarkFailed(ctx, e.ID, reason, now); err != nil {
			return fmt.Errorf("mark ledger row %s failed: %w", e.ID, err)
		}
		return nil
	}
	if e.CustomerID == "" {
		return "", fail("the subscription has no Stripe customer")
	}
	if e.Attempts > c.MaxAttempts {
		return "", fail(fmt.Sprintf("gave up after %d attempts: %s", e.Attempts-1, e.LastError))
	}
	providerErr := func(op string, err error) error {
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case Retryable(err):
			rep.Retry++
			log.WarnContext(ctx, "overage item left pending", "op", op, "reason", ErrorMessage(err), "attempts", e.Attempts)
			if merr := c.Ledger.MarkRetry(ctx, e.ID, ErrorMessage(err), now); merr != nil {
				return fmt.Errorf("release ledger row %s: %w", e.ID, merr)
			}
			return nil
		case ErrorCode(err) == CodeUnauthorized || ErrorCode(err) == CodeForbidden:
			_ = c.Ledger.MarkRetry(ctx, e.ID, ErrorMessage(err), now)
			return fmt.Errorf("stripe refused the credentials: %w", err)
		default:
			return fail(ErrorMessage(err))
		}
	}

	// A row tried before, longer ago than the key window: the key may be
	// gone, so ask Stripe whether the item exists before creating it.
	if e.Attempts > 1 && now.Sub(e.CreatedAt) >= c.KeyWindow {
		rep.StripeCalls++
		id, found, err := c.Biller.FindInvoiceItem(ctx, e.CustomerID, e.ID)
		if err != nil {
			return "", providerErr("find", err)
		}
		if found {
			rep.Found++
			log.InfoContext(ctx, "overage item found by metadata", "stripe_id", id)
			return id, nil
		}
	}
	rep.StripeCalls++
	id, err := c.Biller.CreateInvoiceItem(ctx, e.InvoiceItem(), e.IdempotencyKey)
	if err != nil {
		return "", providerErr("create", err)
	}
	return id, nil
}

func newRunID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("crypto/rand failed"))
	}
	return "run-" + hex.EncodeToString(b[:])
}
