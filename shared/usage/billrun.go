package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Billing run defaults.
const (
	// DefaultGrace is how long after a period (or a segment a plan change
	// closed) ends it is billed: late events may still arrive.
	DefaultGrace = 24 * time.Hour
	// DefaultLookback bounds how far back billed periods are reconsidered
	// for late usage: a period that ended longer ago cannot receive events
	// any more (35-day backfill window, plus the grace period and a margin).
	// Periods that were never billed are billed however old.
	DefaultLookback = 40 * 24 * time.Hour
	// DefaultKeyWindow is the age of a row after which it is looked up in
	// Stripe by metadata before being sent again: Stripe keeps idempotency
	// keys for at least 24 hours; an hour's margin is taken.
	DefaultKeyWindow   = 23 * time.Hour
	DefaultMaxAttempts = 10
	DefaultLease       = 15 * time.Minute
	DefaultWorkers     = 4
	DefaultBatch       = 100
	// MaxReportRows bounds the rows a run report lists; the totals count
	// them all.
	MaxReportRows = 1000
)

// DuePeriods returns the periods of sub a run at now considers, oldest
// first:
//   - every closed period (ended at least grace before now, starting at or
//     after the anchor) after ClosedThrough, however old: they have no rows
//     yet (a subscription that only had dry runs starts from its anchor);
//   - the closed periods that ended less than lookback ago, for late
//     usage;
//   - the period not closed yet whose terms changed at least grace before
//     now: an upgrade closed a segment of it, billed on its own.
func DuePeriods(sub *BillableSubscription, now time.Time, grace, lookback time.Duration) []Period {
	anchor := sub.PeriodAnchor.UTC()
	cutoff := now.Add(-grace)
	oldest := now.Add(-lookback)
	open := PeriodAt(anchor, cutoff)
	var out []Period
	for p := PeriodBefore(anchor, open); !p.Start.Before(anchor); p = PeriodBefore(anchor, p) {
		if !p.End.After(sub.ClosedThrough) && p.End.Before(oldest) {
			break
		}
		out = append(out, p)
	}
	slices.Reverse(out)
	if !open.Start.Before(anchor) && slices.ContainsFunc(sub.History, func(t Terms) bool {
		d := Day(t.From)
		return d.After(open.Start) && !d.After(cutoff)
	}) {
		out = append(out, open)
	}
	return out
}

// Billing closes billing periods and bills their overage exactly once: the
// ledger row is written first, then the invoice item is created with the
// row's idempotency key, then the row is marked billed. Runs may overlap;
// the store's claims keep each row with one run at a time, and the key
// makes a repeated call after a crash harmless.
//
// Each period is priced by segments (Segments): the parts of it under one
// entry of the terms history, each with its plan's included calls prorated
// by days and the calls of its days (PriceLines). A segment is billed once
// it has been over for the grace period: a period's segments at its end,
// and the segment an upgrade closed at the first run after it. A row bills
// the difference between the lines' total and what the period's rows
// already account for, so every change (a closed segment, late usage) is
// one more row with the next seq.
type Billing struct {
	Ledger LedgerStore
	// Biller is nil for a dry run: the run reports the rows a real run
	// would write and writes none.
	Biller Biller
	Logger *slog.Logger
	// Clock gives the times of the run's record (eco_job_runs); nil means
	// time.Now. The run bills at the instant Run is given.
	Clock func() time.Time

	Grace       time.Duration
	Lookback    time.Duration
	KeyWindow   time.Duration
	MaxAttempts int
	Lease       time.Duration
	Workers     int
	Batch       int
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
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// Run plans the rows due at now and bills the pending ones, recording
// itself in the store's job runs. A dry run (no Biller) writes nothing but
// its record. It returns an error only when the run should be retried: the
// store failed, the provider refused the credentials, or rows stayed
// pending after retryable provider errors (CodeUnavailable). Permanent
// per-row failures are recorded on the rows and logged; the run goes on.
func (b *Billing) Run(ctx context.Context, now time.Time) (RunReport, error) {
	c := b.withDefaults()
	now = now.UTC()
	rep := RunReport{RunID: newRunID(), Now: now, DryRun: c.Biller == nil}
	id, err := c.Ledger.OpenRun(ctx, &rep, now, c.Clock().UTC())
	if err != nil {
		return rep, fmt.Errorf("record the run: %w", err)
	}
	rep.JobRunID = id
	err = c.run(ctx, now, &rep)
	if cerr := c.Ledger.CloseRun(context.WithoutCancel(ctx), id, &rep, c.Clock().UTC(), err); cerr != nil && err == nil {
		err = fmt.Errorf("record the run's end: %w", cerr)
	}
	return rep, err
}

func (c *Billing) run(ctx context.Context, now time.Time, rep *RunReport) error {
	start := time.Now()
	if !rep.DryRun {
		if _, err := c.Ledger.PromoteDueTerms(ctx, now); err != nil {
			return fmt.Errorf("promote due plan changes: %w", err)
		}
	}
	entries, progress, err := c.plan(ctx, now, rep)
	if err != nil {
		return err
	}
	report(rep, entries)
	if rep.DryRun {
		rep.PlanTime = time.Since(start)
		return nil
	}
	n, err := c.Ledger.InsertLedgerEntries(ctx, entries, progress, now)
	if err != nil {
		return fmt.Errorf("insert ledger entries: %w", err)
	}
	rep.Inserted = n
	rep.PlanTime = time.Since(start)
	start = time.Now()
	err = c.bill(ctx, now, rep)
	rep.BillTime = time.Since(start)
	if err != nil {
		return err
	}
	if rep.Retry > 0 {
		return Errorf(CodeUnavailable, "%d overage items left pending after retryable errors", rep.Retry)
	}
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

// needsLookup reports whether a claimed row must be looked up by metadata
// before it is sent: it was sent before, and its key may not protect it
// now, because the key window has passed, an admin retried it after it
// failed, or it was sent to another customer (a send to the customer now
// goes under another key).
func (c *Billing) needsLookup(e *LedgerEntry, now time.Time) bool {
	if len(e.SentTo) == 0 {
		return false
	}
	return now.Sub(e.CreatedAt) >= c.KeyWindow || e.Retries > 0 || len(e.SentTo) > 1 || e.SentTo[0] != e.CustomerID
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
	// find looks the row up under every customer it was sent to.
	find := func() (string, bool, error) {
		for _, cus := range e.SentTo {
			rep.StripeCalls++
			id, found, err := c.Biller.FindInvoiceItem(ctx, cus, e.ID)
			if err != nil || found {
				if found {
					rep.Found++
					log.InfoContext(ctx, "overage item found by metadata", "stripe_id", id, "customer_id", cus)
				}
				return id, found, err
			}
		}
		return "", false, nil
	}

	lookedUp := false
	if e.CustomerID == "" || e.Attempts > c.MaxAttempts || c.needsLookup(e, now) {
		id, found, err := find()
		if err != nil {
			return "", providerErr("find", err)
		}
		if found {
			return id, nil
		}
		lookedUp = true
	}
	switch {
	case e.CustomerID == "":
		return "", fail("the subscription has no Stripe customer")
	case e.Attempts > c.MaxAttempts:
		return "", fail(fmt.Sprintf("gave up after %d attempts: %s", e.Attempts-1, e.LastError))
	}
	key := e.SendKey(e.CustomerID)
	if lookedUp && key != e.IdempotencyKey {
		log.InfoContext(ctx, "overage item sent to a new customer", "customer_id", e.CustomerID, "first_customer_id", e.SentTo[0])
	}
	rep.StripeCalls++
	id, err := c.Biller.CreateInvoiceItem(ctx, e.InvoiceItem(e.CustomerID), key)
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
