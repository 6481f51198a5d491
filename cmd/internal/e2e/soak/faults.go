package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// killer kills the record function in mid-batch up to Kills times, until
// stop: it sleeps a random 0.5-3 s, waits for a batch in flight, lets it
// run a random few milliseconds and kills the execution environment (the
// stack starts a fresh one; the batch goes back to the queue after the
// visibility timeout). The kills are spread over the run: the k-th of K
// waits until k/(K+1) of the events are sent.
func (r *runner) killer(ctx context.Context, stop <-chan struct{}) {
	rec := r.st.Lambda("record")
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0x6b11))
	wait := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-stop:
		case <-ctx.Done():
		}
		return false
	}
	for int(r.kills.Load()) < r.cfg.Kills {
		if !wait(500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))) {
			return
		}
		if k := r.kills.Load() + 1; r.sent.Load() < k*int64(r.cfg.Events)/int64(r.cfg.Kills+1) {
			continue
		}
		for deadline := time.Now().Add(3 * time.Second); !rec.InFlight() && time.Now().Before(deadline); {
			if !wait(5 * time.Millisecond) {
				return
			}
		}
		if !wait(time.Duration(rng.Int64N(int64(30 * time.Millisecond)))) {
			return
		}
		if rec.InFlight() && rec.Kill() == nil {
			n := r.kills.Add(1)
			r.log.Info("soak: killed the record function in mid-batch", "kill", n)
		}
	}
}

// restartPostgres restarts PostgreSQL once, with the producers and the
// record path running: its connections are cut and the transactions in
// flight roll back. With an Outage it stays down that long (outage,
// begun by stopPostgres), and some queue events sent meanwhile are made at
// the backfill window's edge.
func (r *runner) restartPostgres(ctx context.Context, o *outage) {
	start := time.Now()
	var err error
	switch {
	case o != nil && o.err != nil:
		err = o.err
	case o != nil:
		start = o.began
		err = r.endOutage(ctx, o)
	default:
		err = r.cfg.Restart(ctx, "pg")
	}
	switch {
	case errors.Is(err, ErrNotRestartable):
		r.report.note("PostgreSQL not restarted: %v", err)
	case err != nil:
		r.report.mismatch("restart PostgreSQL: %v", err)
	default:
		r.report.PostgresRestarts++
		r.report.PostgresDown = time.Since(start)
		r.log.Info("soak: restarted PostgreSQL", "s", r.report.PostgresDown.Seconds())
	}
}

// outage is a PostgreSQL outage under way: when it began, the events sent
// until then, and why it could not begin.
type outage struct {
	began time.Time
	sent  int64
	err   error
}

// stopPostgres begins an outage: PostgreSQL stops, and the events made
// from its return on are made during it, some at the window's edge.
func (r *runner) stopPostgres(ctx context.Context) *outage {
	o := &outage{began: time.Now()}
	if o.err = r.cfg.Restart(ctx, "pg-stop"); o.err != nil {
		return o
	}
	r.log.Info("soak: PostgreSQL stopped", "outage_s", r.cfg.Outage.Seconds())
	o.sent = r.sent.Load()
	r.mu.Lock()
	r.gen.edge = true
	r.mu.Unlock()
	return o
}

// endOutage waits out the rest of Outage and starts PostgreSQL again.
func (r *runner) endOutage(ctx context.Context, o *outage) error {
	sleep(ctx, r.cfg.Outage-time.Since(o.began))
	r.mu.Lock()
	r.gen.edge = false
	r.report.SentDuringOutage = int(r.sent.Load() - o.sent)
	r.mu.Unlock()
	// Started whatever becomes of ctx: the services outlive the run.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	return r.cfg.Restart(sctx, "pg-start")
}

// restartMoto restarts moto_server once and replays what it lost. The
// raw and HTTP sends pause meanwhile, so that each lands wholly on the
// old server or on the new one; the publisher's sends fail and are
// retried.
func (r *runner) restartMoto(ctx context.Context, rawCh, httpCh chan<- send) {
	start := time.Now()
	r.pause.Lock()
	err := r.cfg.Restart(ctx, "moto")
	if err == nil {
		for ctx.Err() == nil {
			if err = r.st.RestoreQueues(ctx); err == nil {
				break
			}
			sleep(ctx, 200*time.Millisecond)
		}
	}
	r.pause.Unlock()
	switch {
	case errors.Is(err, ErrNotRestartable):
		r.report.note("moto_server not restarted: %v", err)
		return
	case err != nil:
		r.report.mismatch("restart moto_server: %v", err)
		return
	}
	r.report.MotoRestarts++
	r.report.MotoDown = time.Since(start)
	r.log.Info("soak: restarted moto_server and restored the queues", "s", r.report.MotoDown.Seconds())
	// The batch the record function held when the old server went may
	// still commit: let it, before reading what is recorded.
	rec := r.st.Lambda("record")
	for deadline := time.Now().Add(30 * time.Second); rec.InFlight() && time.Now().Before(deadline) && ctx.Err() == nil; {
		sleep(ctx, 10*time.Millisecond)
	}
	if err := r.replay(ctx, rawCh, httpCh); err != nil {
		r.report.mismatch("replay after the moto_server restart: %v", err)
	}
}

// replay sends again every event sent so far that is neither recorded
// nor quarantined, each the way it came (its first copy): what a
// producer fleet's replay does after a queue lost messages. Events not yet
// sent, and those the HTTP edge refused, are left alone.
func (r *runner) replay(ctx context.Context, rawCh, httpCh chan<- send) error {
	recorded, err := r.strings(ctx, `SELECT event_id::text FROM eco_api_usage`)
	if err != nil {
		return err
	}
	quarantined, err := r.strings(ctx, `SELECT event_id FROM eco_rejected_events UNION SELECT body FROM eco_rejected_events WHERE event_id = ''`)
	if err != nil {
		return err
	}
	r.mu.Lock()
	var again []send
	for _, it := range r.gen.items {
		switch {
		// Events made at the window's edge come after moto_server's
		// restart (Config.Outage), and the DLQ's are the redrive's.
		case !it.queued, it.atEdge, it.deadLettered:
		case it.body != "" && !quarantined[it.body], it.id != "" && !recorded[it.id] && !quarantined[it.id]:
			it.copies++
			again = append(again, send{it: it, at: it.stamps[0], dup: true})
		}
	}
	r.mu.Unlock()
	for _, s := range again {
		r.replayed.Add(1)
		var ch chan<- send
		switch {
		case s.it.path == pathHTTP:
			ch = httpCh
		case s.it.raw:
			ch = rawCh
		default:
			r.publish(ctx, s)
			continue
		}
		// The workers stop reading when the run is cancelled.
		select {
		case ch <- s:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.log.Info("soak: replayed what moto_server lost", "events", len(again))
	return nil
}

// strings reads a query's one text column into a set.
func (r *runner) strings(ctx context.Context, sql string) (map[string]bool, error) {
	for {
		rows, err := r.db.Query(ctx, sql)
		if err == nil {
			set := map[string]bool{}
			var s string
			for rows.Next() {
				if err = rows.Scan(&s); err != nil {
					break
				}
				set[s] = true
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
			if err == nil {
				return set, nil
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %q: %w", sql, err)
		}
		sleep(ctx, 200*time.Millisecond) // PostgreSQL restarting
	}
}
