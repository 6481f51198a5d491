package billing

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Billing run defaults.
const (
	// DefaultGrace is how long after a period (or a segment a plan change
	// closed) ends it is billed: late events may still arrive.
	DefaultGrace = 24 * time.Hour
	// DefaultLookback is how far back a run reconsiders billed periods for
	// late usage: the longest backfill window a deployment may set
	// (usage.MaxBackfillWindow) plus usage.BackfillMargin, 50 days.
	//
	// An event is accepted up to the window after it happened (judged at
	// its acceptance by the queue), so a period that ended longer ago than
	// the window plus the margin (the daily run, its retries and clocks)
	// cannot receive events any more. It is the longest window's, not the
	// deployment's BACKFILL_WINDOW: the window may have been lowered since
	// calls were recorded under the one before, and those calls are billed
	// all the same. (A lookback of the window in force reconsidered none of
	// the periods that ended between the two windows' lookbacks, and the
	// calls recorded for them in the days before the change were never
	// billed.) Periods that were never billed are billed however old.
	DefaultLookback    = usage.MaxBackfillWindow + usage.BackfillMargin
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
//   - the period not closed yet with a segment over for grace (Segments:
//     an upgrade that changed the included calls or the price closed it),
//     billed on its own.
func DuePeriods(sub *BillableSubscription, now time.Time, grace, lookback time.Duration) []usage.Period {
	anchor := sub.PeriodAnchor.UTC()
	cutoff := now.Add(-grace)
	oldest := now.Add(-lookback)
	open := usage.PeriodAt(anchor, cutoff)
	var out []usage.Period
	for p := usage.PeriodBefore(anchor, open); !p.Start.Before(anchor); p = usage.PeriodBefore(anchor, p) {
		if !p.End.After(sub.ClosedThrough) && p.End.Before(oldest) {
			break
		}
		out = append(out, p)
	}
	slices.Reverse(out)
	if !open.Start.Before(anchor) && slices.ContainsFunc(usage.Segments(open, sub.History), func(s usage.Segment) bool {
		return s.To.Before(open.End) && !s.To.After(cutoff)
	}) {
		out = append(out, open)
	}
	return out
}

// Billing closes billing periods and bills their overage exactly once: the
// ledger row is written first (its id and key derived from user, period and
// seq), then the invoice item is created with the row's idempotency key,
// then the row is marked billed. Runs may overlap; the store's claims keep
// each row with one run at a time, and the key makes a repeated call after
// a crash harmless. Each real run first makes the ledger account for the
// items Stripe holds (reconcile), so that neither a lost answer nor a
// restore of the database has a row's item created twice.
//
// Each period is priced by segments (Segments): the parts of it under one
// set of billing terms, each with its terms' included calls for the whole
// period, the calls of its days, and the period's calls and billable calls
// before it (PriceLines, Line). A segment is billed once it has been over
// for the grace period: a period's segments at its end, and the segment an
// upgrade closed at the first run after it. A row bills the difference
// between the lines' total and what the period's rows charged, so every
// change (a closed segment, late usage) is one more row with the next seq.
//
// Build it with New; its settings are fixed from then on, and it is safe
// for concurrent runs.
type Billing struct {
	cfg Config
}

// Config is what a Billing is built from (New). Ledger is required; every
// other field has a default, taken when it is zero.
type Config struct {
	Ledger LedgerStore
	// Biller is nil for dry runs only: a run reports the rows a real run
	// would write and writes none.
	Biller Biller
	// Logger logs the runs (nil: slog.Default(), as every service here).
	Logger *slog.Logger
	// Clock gives the times of a run's record (eco_job_runs); nil means
	// time.Now. A run bills at the instant Run is given.
	Clock func() time.Time

	// Grace is how long after a period (or a segment) ends it is billed
	// (0: DefaultGrace).
	Grace time.Duration
	// Lookback is how far back billed periods are reconsidered for late
	// usage (0: DefaultLookback, which every deployment runs with: it
	// covers any backfill window the deployment may have had).
	Lookback time.Duration
	// MaxAttempts is how many attempts a row has before it is failed
	// (0: DefaultMaxAttempts).
	MaxAttempts int
	// Lease is how long a claim keeps other runs away from a row
	// (0: DefaultLease).
	Lease time.Duration
	// Workers is how many rows are sent to the Biller at once
	// (0: DefaultWorkers).
	Workers int
	// Batch is how many pending rows a claim takes (0: DefaultBatch).
	Batch int
}

// New returns the Billing cfg describes, its zero settings set to their
// defaults, or a CodeInvalid error saying which setting is wrong: no
// ledger store, or a negative duration or count.
func New(cfg Config) (*Billing, error) {
	negative := func(what string, v, deflt any) error { return usage.NegativeSetting("billing", what, v, deflt) }
	switch {
	case cfg.Ledger == nil:
		return nil, usage.Errorf(usage.CodeInvalid, "billing: a ledger store is required")
	case cfg.Grace < 0:
		return nil, negative("the grace period", cfg.Grace, DefaultGrace)
	case cfg.Lookback < 0:
		return nil, negative("the lookback", cfg.Lookback, DefaultLookback)
	case cfg.MaxAttempts < 0:
		return nil, negative("the attempts per row", cfg.MaxAttempts, DefaultMaxAttempts)
	case cfg.Lease < 0:
		return nil, negative("the lease", cfg.Lease, DefaultLease)
	case cfg.Workers < 0:
		return nil, negative("the workers", cfg.Workers, DefaultWorkers)
	case cfg.Batch < 0:
		return nil, negative("the batch", cfg.Batch, DefaultBatch)
	}
	cfg.Grace = cmp.Or(cfg.Grace, DefaultGrace)
	cfg.Lookback = cmp.Or(cfg.Lookback, DefaultLookback)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts)
	cfg.Lease = cmp.Or(cfg.Lease, DefaultLease)
	cfg.Workers = cmp.Or(cfg.Workers, DefaultWorkers)
	cfg.Batch = cmp.Or(cfg.Batch, DefaultBatch)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Billing{cfg: cfg}, nil
}

// Config returns the settings b runs with, the defaults filled in.
func (b *Billing) Config() Config { return b.cfg }

// Run plans the rows due at now and bills the pending ones, recording
// itself in the store's job runs. A dry run (no Biller) writes nothing but
// its record. It returns an error only when the run should be retried: the
// store failed, the provider refused the credentials, or rows stayed
// pending after retryable provider errors (CodeUnavailable). Permanent
// per-row failures are recorded on the rows and logged; the run goes on.
func (b *Billing) Run(ctx context.Context, now time.Time) (RunReport, error) {
	return b.RunWith(ctx, now, RunOptions{})
}

// RunOptions are what one run may set apart from the Billing's own
// settings, which it leaves as they are.
type RunOptions struct {
	// DryRun bills nothing, even with a Biller: the run reports what it
	// would bill and writes no ledger row.
	DryRun bool
	// Logger, when not nil, logs this run (an invocation's logger, with
	// its request id) instead of the Billing's.
	Logger *slog.Logger
}

// RunWith is Run under opts.
func (b *Billing) RunWith(ctx context.Context, now time.Time, opts RunOptions) (RunReport, error) {
	c := *b
	if opts.DryRun {
		c.cfg.Biller = nil
	}
	if opts.Logger != nil {
		c.cfg.Logger = opts.Logger
	}
	now = now.UTC()
	rep := RunReport{RunID: newRunID(), Now: now, DryRun: c.cfg.Biller == nil}
	id, err := c.cfg.Ledger.OpenRun(ctx, &rep, now, c.cfg.Clock().UTC())
	if err != nil {
		return rep, fmt.Errorf("record the run: %w", err)
	}
	rep.JobRunID = id
	err = c.run(ctx, now, &rep)
	if cerr := c.cfg.Ledger.CloseRun(context.WithoutCancel(ctx), id, &rep, c.cfg.Clock().UTC(), err); cerr != nil && err == nil {
		err = fmt.Errorf("record the run's end: %w", cerr)
	}
	return rep, err
}

func (b *Billing) run(ctx context.Context, now time.Time, rep *RunReport) error {
	start := time.Now()
	if !rep.DryRun {
		if _, err := b.cfg.Ledger.PromoteDueTerms(ctx, now); err != nil {
			return fmt.Errorf("promote due plan changes: %w", err)
		}
		if err := b.reconcile(ctx, now, rep); err != nil {
			return err
		}
	}
	entries, progress, err := b.plan(ctx, now, rep)
	if err != nil {
		return err
	}
	report(rep, entries)
	if rep.DryRun {
		rep.PlanTime = time.Since(start)
		return nil
	}
	n, err := b.cfg.Ledger.InsertLedgerEntries(ctx, entries, progress, now)
	if err != nil {
		return fmt.Errorf("insert ledger entries: %w", err)
	}
	rep.Inserted = n
	rep.PlanTime = time.Since(start)
	start = time.Now()
	err = b.bill(ctx, now, b.reconcileSince(now), rep)
	rep.BillTime = time.Since(start)
	if err != nil {
		return err
	}
	if rep.Retry > 0 {
		return usage.Errorf(usage.CodeUnavailable, "%d overage items left pending after retryable errors", rep.Retry)
	}
	return nil
}

// bill claims pending rows in batches and bills them with the configured
// Workers. The rows billed in a batch are marked in one statement after the
// batch: a crash before that leaves them pending, and the next run adopts
// their items as it reconciles the ledger with Stripe (or finds them by a
// lookup, or Stripe answers their keys with the same items).
func (b *Billing) bill(parent context.Context, now, since time.Time, rep *RunReport) error {
	var mu sync.Mutex
	for {
		batch, err := b.cfg.Ledger.ClaimPending(parent, ClaimRequest{Owner: rep.RunID, Now: now, Lease: b.cfg.Lease, Limit: b.cfg.Batch})
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
		for range min(b.cfg.Workers, len(batch)) {
			wg.Go(func() {
				for e := range work {
					if ctx.Err() != nil {
						continue // the run is stopping: leave the row to its lease
					}
					var r RunReport
					one, err := b.billOne(ctx, now, since, e, &r)
					if err != nil {
						cancel(err)
					}
					mu.Lock()
					if one != nil {
						billed = append(billed, *one)
					}
					rep.Found += r.Found
					rep.Adopted += r.Adopted
					rep.Replanned += r.Replanned
					rep.Duplicates += r.Duplicates
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
		// Record what was billed even when the run is stopping, its
		// deadline passed included (the statement's timeout bounds it):
		// these items exist, and a row left pending would cost a lookup.
		if merr := b.cfg.Ledger.MarkBilled(context.WithoutCancel(parent), billed, now); merr != nil {
			return fmt.Errorf("mark %d ledger rows billed: %w", len(billed), merr)
		}
		rep.Billed += len(billed)
		if err != nil {
			return err
		}
	}
}

// needsLookup reports whether a claimed row must be looked up in Stripe
// before an item is created for it: its item may exist whatever the
// ledger says when it was sent before (the answer of an attempt may be
// lost, and a key protects a day only), when an admin retried it, and when
// its period started before the items the run reconciled (a row of an old
// period planned again after a restore of the database). The run's
// reconciliation covers every other row.
func needsLookup(e *LedgerEntry, since time.Time) bool {
	return len(e.SentTo) > 0 || e.Retries > 0 || e.Period.Start.Before(since)
}

// billOne bills one claimed row and returns what to record as billed (nil
// when the row was not billed). It returns an error only when the run must
// stop.
//
// When the row needs it (needsLookup) it first asks Stripe for the items
// of the row's period, under every customer the row was sent to and the
// one it is for now. The item of the row itself (its seq) bills the row
// with its amount; items of other seqs the ledger does not account for are
// adopted (Reconcile), and when that changes what the period's rows
// charged, the row, planned against the old sums, is not sent: the next
// run plans the period again.
func (b *Billing) billOne(ctx context.Context, now, since time.Time, e *LedgerEntry, rep *RunReport) (*Billed, error) {
	log := b.cfg.Logger.With("ledger_id", e.ID, "user_id", e.UserID, "period_start", e.Period.Start.Format(time.DateOnly), "seq", e.Seq)
	fail := func(reason string) error {
		rep.Failed++
		log.ErrorContext(ctx, "overage item failed", "reason", reason, "attempts", e.Attempts)
		if err := b.cfg.Ledger.MarkFailed(ctx, e.ID, reason, now); err != nil {
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
			log.WarnContext(ctx, "overage item left pending", "op", op, "reason", usage.ErrorMessage(err), "attempts", e.Attempts)
			if merr := b.cfg.Ledger.MarkRetry(ctx, e.ID, usage.ErrorMessage(err), now); merr != nil {
				return fmt.Errorf("release ledger row %s: %w", e.ID, merr)
			}
			return nil
		case usage.ErrorCode(err) == usage.CodeUnauthorized || usage.ErrorCode(err) == usage.CodeForbidden:
			_ = b.cfg.Ledger.MarkRetry(ctx, e.ID, usage.ErrorMessage(err), now)
			return fmt.Errorf("stripe refused the credentials: %w", err)
		default:
			return fail(usage.ErrorMessage(err))
		}
	}

	var customers []string
	if needsLookup(e, since) {
		customers = slices.Clone(e.SentTo)
		if e.CustomerID != "" && !slices.Contains(customers, e.CustomerID) {
			customers = append(customers, e.CustomerID)
		}
	}
	var found []FoundItem
	for _, cus := range customers {
		rep.StripeCalls++
		items, err := b.cfg.Biller.FindInvoiceItems(ctx, cus, e.UserID, e.Period)
		if err != nil {
			return nil, providerErr("find", err)
		}
		found = append(found, items...)
	}
	r := Reconcile(e, found)
	if r.Duplicates > 0 {
		rep.Duplicates += r.Duplicates
		log.ErrorContext(ctx, "Stripe holds more than one item for a ledger row of the period; the first is kept, review the others",
			"items", len(found))
	}
	if len(r.Adopt) > 0 {
		if err := b.cfg.Ledger.Adopt(ctx, r.Adopt, now); err != nil {
			return nil, fmt.Errorf("adopt %d items of ledger row %s's period: %w", len(r.Adopt), e.ID, err)
		}
		rep.Adopted += len(r.Adopt)
		log.WarnContext(ctx, "items of the period found in Stripe that the ledger did not account for; adopted", "items", len(r.Adopt))
	}
	if own := r.Own; own != nil {
		rep.Found++
		if own.Currency != e.Currency {
			return nil, fail(fmt.Sprintf("Stripe holds the item %s for this row in %s; the row bills in %s", own.ID,
				strings.ToUpper(own.Currency), strings.ToUpper(e.Currency)))
		}
		billed := &Billed{LedgerID: e.ID, StripeID: own.ID, Amount: own.Amount}
		if own.Amount != e.Amount {
			billed.Note = fmt.Sprintf("found in Stripe as %s with %s, planned again at %s: the next run plans the difference",
				own.ID, usage.FormatMoney(own.Amount, own.Currency), usage.FormatMoney(e.Amount, e.Currency))
		}
		log.InfoContext(ctx, "overage item found in Stripe", "stripe_id", own.ID, "amount", own.Amount)
		return billed, nil
	}
	if r.Changed {
		rep.Replanned++
		if err := b.cfg.Ledger.MarkSkipped(ctx, e.ID, "not sent: Stripe holds items of this period that the ledger did not account for "+
			"(adopted); the next run plans the period again", now); err != nil {
			return nil, fmt.Errorf("skip ledger row %s: %w", e.ID, err)
		}
		return nil, nil
	}
	switch step := usage.CurrencyStep(e.Currency); {
	case e.Amount%step != 0:
		// Stripe would refuse it; the rows planned now never are (Price
		// rounds to the step), those of an earlier version or by hand can be.
		return nil, fail(fmt.Sprintf("not sent: %s is not an amount Stripe charges: %s in multiples of %s only; review the row",
			usage.FormatMoney(e.Amount, e.Currency), strings.ToUpper(e.Currency), usage.FormatMoney(step, e.Currency)))
	case e.CustomerID == "":
		return nil, fail("the subscription has no Stripe customer")
	case e.Attempts > b.cfg.MaxAttempts:
		return nil, fail(fmt.Sprintf("gave up after %d attempts: %s", e.Attempts-1, e.LastError))
	}
	key := e.SendKey(e.CustomerID)
	if key != e.IdempotencyKey {
		log.InfoContext(ctx, "overage item sent to a new customer", "customer_id", e.CustomerID, "first_customer_id", e.SentTo[0])
	}
	rep.StripeCalls++
	id, err := b.cfg.Biller.CreateInvoiceItem(ctx, e.InvoiceItem(e.CustomerID), key)
	if err != nil {
		return nil, providerErr("create", err)
	}
	return &Billed{LedgerID: e.ID, StripeID: id, Amount: e.Amount}, nil
}

func newRunID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("crypto/rand failed"))
	}
	return "run-" + hex.EncodeToString(b[:])
}
