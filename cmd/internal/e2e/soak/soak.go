package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/sqspub"
)

// Config is one soak run. Zero values take the defaults.
type Config struct {
	// Events is how many events the producers send, every copy counted
	// (default 200,000).
	Events int
	// Duplicates is the share of sends that repeat an earlier event's id
	// (default 0.20); Restamp the share of those copies sent with another
	// occurred_at (default 0.25; negative: none), which must count once
	// all the same.
	Duplicates, Restamp float64
	// Late is the share of valid events one to 33 days old (default
	// 0.10); Invalid and Hostile the shares of invalid events (every kind
	// in turn, default 0.01) and of hostile values (default 0.005); HTTP
	// the share sent through POST /v1/events (default 0.10; negative:
	// none).
	Late, Invalid, Hostile, HTTP float64
	// Users is how many users the queue path's events belong to (default
	// 50); the HTTP path's belong to the API key's user.
	Users int
	// Kills bounds how many times the record function is killed in
	// mid-batch (default 10; negative: never).
	Kills int
	// RestartPostgres and RestartMoto restart each service once, at 40 %
	// and 70 % of the events sent (Restart runs it).
	RestartPostgres, RestartMoto bool
	// Outage, when positive, makes the PostgreSQL fault an outage that
	// long: the server is stopped at 40 % of the events and started again
	// Outage later (Restart's "pg-stop" and "pg-start"), and moto_server
	// restarts at 20 % instead, before it. Some queue events sent during
	// the outage are accepted EdgeMargin inside the backfill window's
	// edge: only judging their age at their acceptance records them.
	Outage time.Duration
	// Redelivery is the schedule StackOptions gave the record function
	// (default SoakRedelivery), for the report.
	Redelivery record.Redelivery
	// DeadLetters is how many messages, dead-lettered by an earlier
	// outage, the soak puts in the DLQ once its faults are over (default
	// 3; negative: none; one of them accepted 2 s inside the backfill
	// window's edge). After the run drains, the DLQ is redriven through
	// POST /v1/admin/redrive, and they must be recorded.
	DeadLetters int
	// Restart restarts a service ("pg", "moto") in place; ErrNotRestartable
	// skips the fault, and the report says so.
	Restart func(ctx context.Context, service string) error
	// Rate bounds the events sent per second (0: as fast as the paths take
	// them).
	Rate int
	// Seed makes the events, their kinds and the faults' moments
	// reproducible.
	Seed uint64
	// Logger receives the soak's progress (default: discarded).
	Logger *slog.Logger
	// Tally, when the stack was started by StartStack, counts the
	// stack's and the functions' failures for the report.
	Tally *Tally
}

// ErrNotRestartable is Config.Restart's error for a service it cannot
// restart here.
var ErrNotRestartable = errors.New("the service cannot be restarted here")

func (c Config) withDefaults() Config {
	if c.Events <= 0 {
		c.Events = 200_000
	}
	def := func(v *float64, d float64) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 0
		}
	}
	def(&c.Duplicates, 0.20)
	def(&c.Restamp, 0.25)
	def(&c.Late, 0.10)
	def(&c.Invalid, 0.01)
	def(&c.Hostile, 0.005)
	def(&c.HTTP, 0.10)
	if c.Users <= 0 {
		c.Users = 50
	}
	switch {
	case c.Kills == 0:
		c.Kills = 10
	case c.Kills < 0:
		c.Kills = 0
	}
	switch {
	case c.DeadLetters == 0:
		c.DeadLetters = 3
	case c.DeadLetters < 0:
		c.DeadLetters = 0
	}
	if c.Redelivery.Base <= 0 {
		c.Redelivery = SoakRedelivery
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Tally == nil {
		c.Tally = NewTally()
	}
	return c
}

// runner is one run's state.
type runner struct {
	cfg    Config
	st     *devstack.Stack
	state  *devstack.State
	db     *pgxpool.Pool
	log    *slog.Logger
	gen    *generator
	pub    *sqspub.Publisher
	report *Report

	mu sync.Mutex // the generator's items and their fields, placed

	// placed are the ids of the messages the soak put in the DLQ itself.
	placed map[string]bool

	// pause is held for reading by every raw and HTTP send, and for
	// writing while moto_server restarts, so that each send lands wholly
	// on the old server or on the new one.
	pause sync.RWMutex

	sent, sentHTTP, replayed, httpRetries atomic.Int64
	kills                                 atomic.Int64
}

// Run runs the soak against st (a stack StartStack started: its own
// database, a short visibility timeout) and checks the outcome. The error
// is for a soak that could not run; what the pipeline got wrong is in
// Report.Mismatches.
func Run(ctx context.Context, st *devstack.Stack, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	state := st.State()
	var httpUser identity
	for _, u := range state.Users {
		if u.UserID == seed.EnterpriseUserID {
			httpUser = identity{userID: u.UserID, apiKeyID: u.APIKeyID}
		}
	}
	if httpUser.userID == "" && cfg.HTTP > 0 {
		return nil, errors.New("soak: the stack seeded no enterprise user for the HTTP path")
	}
	if st.Lambda("record") == nil || (cfg.HTTP > 0 && st.Lambda("analytics") == nil) {
		return nil, fmt.Errorf("soak: the functions are not running: %v", state.Functions)
	}
	r0 := &Report{Config: cfg}
	if js, err := json.Marshal(state); err == nil && bytes.Contains(js, []byte(`"platform`)) {
		r0.note("the stack runs a sample platform API: the soak does not drive it yet")
	} else {
		r0.note("the sample platform API is not part of this stack: its path is not driven")
	}
	db, err := pgxpool.New(ctx, state.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	r := &runner{cfg: cfg, st: st, state: state, db: db, log: cfg.Logger, placed: map[string]bool{},
		gen:    newGenerator(cfg, func() time.Time { return time.Now().UTC() }, httpUser),
		report: r0}
	r.pub = sqspub.New(moto.SQS(state.SQSEndpoint, state.Region), state.QueueURL, sqspub.Options{
		BatchSize: 1000, MaxAge: 200 * time.Millisecond, BufferSize: 20_000, BlockTimeout: 5 * time.Second,
		MaxAttempts: 8, Logger: cfg.Logger})
	start := time.Now()
	// The kills go on while the queue drains: redelivered batches are
	// batches too.
	killsDone, stopKills := make(chan struct{}), make(chan struct{})
	go func() { defer close(killsDone); r.killer(ctx, stopKills) }()
	stop := sync.OnceFunc(func() {
		close(stopKills)
		<-killsDone
	})
	defer stop()
	if err := r.produce(ctx); err != nil {
		return nil, err
	}
	r.report.SendTime = time.Since(start)
	r.log.Info("soak: sent; waiting for the queue to drain", "events", cfg.Events, "s", r.report.SendTime.Seconds())
	if err := r.drain(ctx); err != nil {
		return nil, err
	}
	// What the run sent to the DLQ, read before the redrive moves it back.
	dead, err := r.deadLetters(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the DLQ: %w", err)
	}
	if err := r.redrive(ctx); err != nil {
		return nil, err
	}
	if err := r.drain(ctx); err != nil {
		return nil, err
	}
	stop()
	r.report.Duration = time.Since(start)
	r.report.Kills = int(r.kills.Load())
	r.report.FunctionRestarts = st.Lambda("record").Restarts()
	r.report.Failures = cfg.Tally.Counts()
	if err := r.verify(ctx, dead); err != nil {
		return nil, err
	}
	return r.report, nil
}

// produce runs the producers and the faults until every event is sent
// and the faults are over.
func (r *runner) produce(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rawCh := make(chan send, 1000)
	// The HTTP path may hold every copy it is given: while PostgreSQL is
	// down, POST /v1/events answers 503 and its one worker waits, and the
	// queue's producers must not wait with it.
	httpCh := make(chan send, r.cfg.Events)
	var workers, faults sync.WaitGroup
	workers.Add(2)
	go func() { defer workers.Done(); r.sendRaw(ctx, rawCh, cancel) }()
	go func() { defer workers.Done(); r.sendHTTP(ctx, httpCh, cancel) }()

	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0x7a11))
	pgAt, motoAt := r.cfg.Events*4/10, r.cfg.Events*7/10
	if r.cfg.Outage > 0 {
		// moto_server's restart loses the queue's messages, which real SQS
		// never does, and the soak replays them: before the outage, so
		// that no event accepted near the window's edge is replayed after
		// it has aged past it.
		motoAt = r.cfg.Events * 2 / 10
	}
	// With an Outage, PostgreSQL stops only once moto_server's restart is
	// over (on a loaded machine it can take longer than the events between
	// the two take to make), and the events after it are made only then,
	// at their pace: the events made at the window's edge during the outage
	// must not wait out a queue that is down, or be replayed.
	motoDone := make(chan struct{})
	if !r.cfg.RestartMoto || r.cfg.Outage == 0 {
		close(motoDone)
	}
	start := time.Now()
	for i := range r.cfg.Events {
		if ctx.Err() != nil {
			break
		}
		switch {
		case i == pgAt && r.cfg.RestartPostgres:
			var o *outage
			if r.cfg.Outage > 0 {
				// The events after this point wait for moto_server and for
				// PostgreSQL to stop, and keep their pace after it.
				stalled := time.Now()
				select {
				case <-motoDone:
				case <-ctx.Done():
				}
				// What the publisher still holds from moto_server's
				// restart and the replay goes first, so that the events
				// made at the window's edge are accepted as they are
				// made, not behind that backlog or a retry's backoff.
				for ctx.Err() == nil && r.pub.Flush(ctx) != nil {
					sleep(ctx, 100*time.Millisecond)
				}
				o = r.stopPostgres(ctx)
				start = start.Add(time.Since(stalled))
			}
			faults.Add(1)
			go func() { defer faults.Done(); r.restartPostgres(ctx, o) }()
		case i == motoAt && r.cfg.RestartMoto:
			faults.Add(1)
			go func() {
				defer faults.Done()
				r.restartMoto(ctx, rawCh, httpCh)
				if r.cfg.Outage > 0 {
					close(motoDone)
				}
			}()
		}
		r.mu.Lock()
		s := r.gen.next()
		if s.it.path == pathQueue && !s.it.raw && s.it.class == classValid && !s.dup && rng.Float64() < 0.05 {
			// Some valid events go in the raw messages too, so that
			// invalid events share messages with valid ones.
			s.it.raw = true
		}
		raw := s.it.raw
		r.mu.Unlock()
		r.sent.Add(1)
		switch {
		case s.it.path == pathHTTP:
			r.sentHTTP.Add(1)
			select {
			case httpCh <- s:
			case <-ctx.Done():
			}
		case raw:
			select {
			case rawCh <- s:
			case <-ctx.Done():
			}
		default:
			r.publish(ctx, s)
		}
		if r.cfg.Rate > 0 && i%50 == 49 {
			if ahead := time.Duration(float64(i+1)/float64(r.cfg.Rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
				select {
				case <-time.After(ahead):
				case <-ctx.Done():
				}
			}
		}
	}
	faults.Wait()
	if err := r.placeDeadLetters(ctx); err != nil {
		cancel(err)
	}
	close(rawCh)
	close(httpCh)
	workers.Wait()
	if err := r.closePublisher(ctx); err != nil {
		cancel(err)
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
