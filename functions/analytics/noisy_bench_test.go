package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// Sizes of BenchmarkNoisyNeighbour.
const (
	noisyQuietUsers    = 50
	noisyFloodClients  = 30
	noisyBackfillers   = 4
	noisyEndpoints     = 300 // the flooder's endpoints per day, for a year
	noisyPhase         = 8 * time.Second
	noisyDeciders      = 4
	noisyEventsPerMsg  = 100
	noisyMsgsPerBatch  = 10
	noisyClientLatency = time.Millisecond // a client's round trip to the API between two of its requests
)

// BenchmarkNoisyNeighbour measures, in one run, what the other tenants
// get from the shared PostgreSQL: the limiter's decision latency (4
// goroutines deciding calls of 50 quiet users through a limits.Limiter, as
// the metering middleware does) and the record path's throughput (one
// writer recording batches of 10 messages × 100 events of those users
// through record.Recorder, as the record function does), in three phases
// of 8 s each:
//
//	quiet:      the measurement alone, the baseline
//	noisy:      the same, while one tenant floods the analytics API (30
//	            clients asking GET /v1/usage/endpoints over 11 to 12 months
//	            of its 300 endpoints a day, each time another range and page
//	            size, so that the breakdown cache does not absorb it, through
//	            the analytics handler with its read budget), and another
//	            backfills (4 clients posting 100 events spread over the
//	            backfill window to POST /v1/events, its admitted events
//	            recorded as they arrive)
//	unbudgeted: the noisy phase without the read budget, what the budget
//	            buys
//
// The goal is that the noisy phase keeps the limiter's p99 and the record
// throughput within 1.5× of the quiet one (ratio metrics below 1.5 and
// above 0.67).
//
// The noisy tenants run in a process of their own at the lowest CPU
// priority (TestNoisyTenants under nice 19): in production their requests
// are answered by other Lambda instances behind API Gateway, on other
// machines, and what they share with the measured paths is PostgreSQL,
// whose work for them runs at its normal priority here too. Each of their
// clients waits a millisecond between its requests, for its round trip to
// the API. NOISY_PARTS=1 also runs each noisy tenant alone.
func BenchmarkNoisyNeighbour(b *testing.B) {
	url := pgtest.NewURL(b)
	db, err := postgres.Open(context.Background(), postgres.Config{URL: url, MaxConns: 16, ExecMode: os.Getenv("DATABASE_PROXY") == "true"})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	n := setupNoisy(b, db)
	n.url = url
	for i := 0; i < b.N; i++ {
		quiet := n.measure(b, false, false)
		if os.Getenv("NOISY_PARTS") != "" {
			n.floodOnly = true
			r := n.measure(b, true, true)
			b.Logf("flood only: p99 %.2f ms, %.0f events/s, flood %v", millis(r.p99), r.recorded, r.flood)
			n.floodOnly, n.backfillOnly = false, true
			r = n.measure(b, true, true)
			b.Logf("backfill only: p99 %.2f ms, %.0f events/s, backfill %v", millis(r.p99), r.recorded, r.backfill)
			n.backfillOnly = false
		}
		noisy := n.measure(b, true, true)
		unbudgeted := n.measure(b, true, false)
		b.ReportMetric(float64(quiet.p99.Microseconds()), "quiet-p99-µs")
		b.ReportMetric(float64(noisy.p99.Microseconds()), "noisy-p99-µs")
		b.ReportMetric(float64(unbudgeted.p99.Microseconds()), "unbudgeted-p99-µs")
		b.ReportMetric(float64(noisy.p99)/float64(quiet.p99), "p99-ratio")
		b.ReportMetric(float64(unbudgeted.p99)/float64(quiet.p99), "unbudgeted-p99-ratio")
		b.ReportMetric(quiet.recorded, "quiet-events/s")
		b.ReportMetric(noisy.recorded, "noisy-events/s")
		b.ReportMetric(unbudgeted.recorded, "unbudgeted-events/s")
		b.ReportMetric(noisy.recorded/quiet.recorded, "throughput-ratio")
		b.ReportMetric(unbudgeted.recorded/quiet.recorded, "unbudgeted-throughput-ratio")
		for _, p := range []struct {
			name string
			r    noisyResult
		}{{"quiet", quiet}, {"noisy", noisy}, {"unbudgeted", unbudgeted}} {
			b.Logf("%-10s limiter p50 %6.2f ms p99 %6.2f ms (%d decisions), recorded %6.0f events/s; flood %d requests (%d × 200, %d × 429, %d other), backfill %d requests (%d × 202, %d × 429), %d events recorded",
				p.name, millis(p.r.p50), millis(p.r.p99), p.r.decisions, p.r.recorded, p.r.flood.total(), p.r.flood[http.StatusOK],
				p.r.flood[http.StatusTooManyRequests], p.r.flood.total()-p.r.flood[http.StatusOK]-p.r.flood[http.StatusTooManyRequests],
				p.r.backfill.total(), p.r.backfill[http.StatusAccepted], p.r.backfill[http.StatusTooManyRequests], p.r.backfilled)
		}
	}
	b.ReportMetric(0, "ns/op")
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// noisy is the benchmark's world: the quiet users, the two noisy tenants,
// and the handler they call.
type noisy struct {
	db       *postgres.DB
	url      string
	limiter  *limits.Limiter
	recorder *record.Recorder
	quiet    []usage.Identity
	// flooderKey and backfillerKey are the noisy tenants' API keys.
	flooderKey, backfillerKey string
	// backfilled carries the events POST /v1/events admitted to the
	// goroutine that records them (the queue and the record function).
	backfilled chan []usage.Event
	seq        atomic.Int64
	// floodOnly and backfillOnly run one noisy tenant alone (NOISY_PARTS).
	floodOnly, backfillOnly bool
}

// statusCounts counts answers by status.
type statusCounts map[int]int

func (c statusCounts) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

type noisyResult struct {
	p50, p99   time.Duration
	decisions  int
	recorded   float64 // quiet users' events recorded per second
	flood      statusCounts
	backfill   statusCounts
	backfilled int64
}

// setupNoisy seeds the quiet users (pro, a rate the measurement never
// reaches), the flooder (free, a year of rollup rows over 300 endpoints a
// day) and the backfiller (pro, 100 events a second at most, bursts of
// 200), and builds the analytics handler as main wires it.
func setupNoisy(b *testing.B, db *postgres.DB) *noisy {
	ctx := context.Background()
	now := time.Now().UTC()
	n := &noisy{db: db, backfilled: make(chan []usage.Event, 64)}
	subs := postgres.NewSubscriptionStore(db)
	fast, burst := 1e6, 1_000_000
	for range noisyQuietUsers {
		id := usage.Identity{UserID: uuid.NewString(), APIKeyID: uuid.NewString()}
		if err := subs.PutSubscription(ctx, &usage.Subscription{UserID: id.UserID, PlanID: usage.PlanPro,
			Overrides: usage.Overrides{RatePerSecond: &fast, Burst: &burst}}); err != nil {
			b.Fatal(err)
		}
		n.quiet = append(n.quiet, id)
	}
	keys := postgres.NewAPIKeyStore(db)
	newKey := func(user string) string {
		secret, k, err := auth.NewAPIKey(user, "noisy")
		if err != nil {
			b.Fatal(err)
		}
		if err := keys.CreateAPIKey(ctx, k); err != nil {
			b.Fatal(err)
		}
		return secret
	}
	flooder, backfiller := uuid.NewString(), uuid.NewString()
	n.flooderKey, n.backfillerKey = newKey(flooder), newKey(backfiller)
	rate, bburst := 100.0, 200
	if err := subs.PutSubscription(ctx, &usage.Subscription{UserID: backfiller, PlanID: usage.PlanPro,
		Overrides: usage.Overrides{RatePerSecond: &rate, Burst: &bburst}}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_usage_daily (day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx,
		request_bytes, response_bytes, latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events)
		SELECT d::date, $1::uuid, 'GET /v1/things/' || e, NULL, 10 + e % 7, e % 3, 0, 1000, 10000, 500, 40, 90, 120, 10
		FROM generate_series($2::date - 365, $2::date - 1, interval '1 day') d, generate_series(1, $3) e`,
		flooder, usage.Day(now), noisyEndpoints); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d rollup rows for the flooder in %s", 365*noisyEndpoints, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	rows, err := postgres.NewAnalyticsStore(db).EndpointBreakdown(ctx, report.BreakdownFilter{UserID: flooder,
		Range: usage.DayRange{From: usage.Day(now).AddDate(0, 0, -(usage.MaxRangeDays - 1)), To: usage.Day(now)}, Limit: MaxLimit})
	if err != nil || len(rows) != noisyEndpoints {
		b.Fatalf("the flooder's year-long breakdown: %d rows, %v", len(rows), err)
	}
	b.Logf("one of the flooder's year-long breakdowns, alone: %s", time.Since(start).Round(time.Millisecond))

	n.limiter = limits.NewLimiter(postgres.NewRateStore(db), limits.LimiterOptions{Now: time.Now})
	n.recorder = newRecorder(b, db)
	return n
}

// newRecorder returns the Recorder the backfilled events and the quiet
// users' batches go through, over db on the wall clock.
func newRecorder(tb testing.TB, db *postgres.DB) *record.Recorder {
	tb.Helper()
	r, err := record.New(record.Config{Store: postgres.NewEventStore(db), Now: time.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// Send implements usage.Sender: the events go to the backfill recorder.
func (n *noisy) Send(_ context.Context, events []usage.Event) []error {
	n.backfilled <- slices.Clone(events)
	return make([]error, len(events))
}

// handler is the analytics handler as main wires it, with or without the
// read budget.
func (n *noisy) handler(budgeted bool) *Handler {
	store := postgres.NewAnalyticsStore(n.db)
	h := &Handler{Usage: store, Admin: store, Auth: &auth.Authenticator{Keys: auth.NewKeyCache(postgres.NewAPIKeyStore(n.db), auth.DefaultKeyCacheTTL, nil)},
		Limits: limits.NewLimiter(postgres.NewRateStore(n.db), limits.LimiterOptions{Now: time.Now}), Publisher: n, Now: time.Now}
	if budgeted {
		h.Reads = limits.NewBudget(postgres.NewRateStore(n.db), limits.BudgetOptions{Name: "read",
			RatePerSecond: limits.DefaultReadRatePerSecond, Burst: limits.DefaultReadBurst})
	}
	return h
}

// measure runs one phase: the deciders and the writer for noisyPhase,
// with the noisy tenants when noisy is set (with or without the read
// budget).
func (n *noisy) measure(b *testing.B, noisy, budgeted bool) noisyResult {
	var res noisyResult
	var stop func() (statusCounts, statusCounts, int64)
	if noisy {
		stop = n.startNoise(b, budgeted)
		// Let the noise reach its steady state before measuring.
		time.Sleep(500 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), noisyPhase)
	defer cancel()
	var wg sync.WaitGroup
	lat := make([][]time.Duration, noisyDeciders)
	for g := range noisyDeciders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for ctx.Err() == nil {
				id := n.quiet[rng.IntN(len(n.quiet))]
				t := time.Now()
				if _, err := n.limiter.Check(ctx, id, 1); err != nil {
					if ctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				lat[g] = append(lat[g], time.Since(t))
			}
		}()
	}
	var recorded atomic.Int64
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			r, err := n.recorder.Record(context.Background(), n.quietBatch())
			if usage.ErrorCode(err) == usage.CodeUnavailable {
				continue // the queue would deliver the batch again
			}
			if err != nil {
				b.Error(err)
				return
			}
			if ctx.Err() == nil {
				recorded.Add(r.Inserted)
			}
		}
	}()
	wg.Wait()
	elapsed := min(time.Since(start), noisyPhase)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) > 0 {
		res.p50, res.p99, res.decisions = all[len(all)/2], all[len(all)*99/100], len(all)
	}
	res.recorded = float64(recorded.Load()) / elapsed.Seconds()
	if stop != nil {
		res.flood, res.backfill, res.backfilled = stop()
	}
	return res
}

// quietBatch is an SQS batch of the quiet users' events, occurred now.
func (n *noisy) quietBatch() []record.Message {
	now := time.Now().UTC()
	msgs := make([]record.Message, noisyMsgsPerBatch)
	for m := range msgs {
		evs := make([]usage.Event, noisyEventsPerMsg)
		for i := range evs {
			id, _ := uuid.NewV7()
			u := n.quiet[int(n.seq.Add(1))%len(n.quiet)]
			evs[i] = usage.Event{Version: usage.EventVersion, EventID: id.String(), UserID: u.UserID, APIKeyID: u.APIKeyID,
				Endpoint: "GET /v1/games/{id}", Method: "GET", StatusCode: 200, LatencyMS: 12, ResponseBytes: 2048, Quantity: 1, OccurredAt: now}
		}
		body, _ := json.Marshal(evs)
		msgs[m] = record.Message{ID: uuid.NewString(), Body: body, AcceptedAt: now}
	}
	return msgs
}

// startNoise starts the noisy tenants in a process of their own (this
// test binary, TestNoisyTenants), as they are served by other Lambda
// instances than the measured paths' and share only PostgreSQL with them;
// the function it returns stops them and reads their counts.
func (n *noisy) startNoise(b *testing.B, budgeted bool) func() (flood, backfill statusCounts, backfilled int64) {
	// At the lowest CPU priority: its own work (answering its requests,
	// 429s included) stands for other machines' (API Gateway, other
	// Lambda instances); what it asks of PostgreSQL runs at the server's
	// priority, as it would.
	cmd := exec.Command("nice", "-n", "19", os.Args[0], "-test.run=^TestNoisyTenants$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NOISY_TENANTS=1", "NOISY_DATABASE_URL="+n.url, "NOISY_FLOODER_KEY="+n.flooderKey,
		"NOISY_BACKFILLER_KEY="+n.backfillerKey, fmt.Sprintf("NOISY_BUDGETED=%v", budgeted),
		fmt.Sprintf("NOISY_FLOOD_ONLY=%v", n.floodOnly), fmt.Sprintf("NOISY_BACKFILL_ONLY=%v", n.backfillOnly))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return func() (statusCounts, statusCounts, int64) {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatalf("the noisy tenants: %v\n%s", err, out.String())
		}
		var c noiseCounts
		for _, line := range strings.Split(out.String(), "\n") {
			if rest, ok := strings.CutPrefix(line, "noise: "); ok {
				if err := json.Unmarshal([]byte(rest), &c); err != nil {
					b.Fatal(err)
				}
			}
		}
		return c.Flood, c.Backfill, c.Backfilled
	}
}

// noiseCounts is what the noisy tenants' process reports.
type noiseCounts struct {
	Flood, Backfill statusCounts
	Backfilled      int64
}

// TestNoisyTenants is BenchmarkNoisyNeighbour's noisy tenants, run in a
// process of their own by the benchmark (NOISY_TENANTS=1) until their
// stdin closes; otherwise it does nothing.
func TestNoisyTenants(t *testing.T) {
	if os.Getenv("NOISY_TENANTS") == "" {
		t.Skip("run by BenchmarkNoisyNeighbour")
	}
	db, err := postgres.Open(context.Background(), postgres.Config{URL: os.Getenv("NOISY_DATABASE_URL"), MaxConns: 16,
		ExecMode: os.Getenv("DATABASE_PROXY") == "true"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := &noisy{db: db, backfilled: make(chan []usage.Event, 64), recorder: newRecorder(t, db),
		flooderKey: os.Getenv("NOISY_FLOODER_KEY"), backfillerKey: os.Getenv("NOISY_BACKFILLER_KEY"),
		floodOnly: os.Getenv("NOISY_FLOOD_ONLY") == "true", backfillOnly: os.Getenv("NOISY_BACKFILL_ONLY") == "true"}
	stop := n.runNoise(t, os.Getenv("NOISY_BUDGETED") == "true")
	_, _ = io.Copy(io.Discard, os.Stdin)
	var c noiseCounts
	c.Flood, c.Backfill, c.Backfilled = stop()
	b, _ := json.Marshal(c)
	fmt.Printf("noise: %s\n", b)
}

// runNoise starts the flood and the backfill through a handler of their
// own, and the recording of what the backfill gets admitted; the function
// it returns stops them and counts their answers.
func (n *noisy) runNoise(tb testing.TB, budgeted bool) func() (flood, backfill statusCounts, backfilled int64) {
	b := tb
	h := n.handler(budgeted)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu              sync.Mutex
		flood, backfill = statusCounts{}, statusCounts{}
		wg              sync.WaitGroup
		recorded        atomic.Int64
	)
	pause := func() {
		select {
		case <-time.After(noisyClientLatency):
		case <-ctx.Done():
		}
	}
	today := usage.Day(time.Now())
	floodClients, backfillers := noisyFloodClients, noisyBackfillers
	if n.floodOnly {
		backfillers = 0
	}
	if n.backfillOnly {
		floodClients = 0
	}
	for c := range floodClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 13))
			for ctx.Err() == nil {
				// Each read another range (the last 11 to 12 months) and
				// page size: hardly two alike, so that the breakdown cache
				// does not absorb the flood.
				from := today.AddDate(0, 0, -(usage.MaxRangeDays - 1 - rng.IntN(31)))
				target := fmt.Sprintf("/v1/usage/endpoints?from=%s&to=%s&limit=%d", day(from), day(today), 1+rng.IntN(MaxLimit))
				resp, _ := h.Handle(ctx, request("GET", target, map[string]string{"X-Api-Key": n.flooderKey}, ""))
				if ctx.Err() == nil {
					mu.Lock()
					flood[resp.StatusCode]++
					mu.Unlock()
				}
				pause()
			}
		}()
	}
	for g := range backfillers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 11))
			for ctx.Err() == nil {
				now := time.Now().UTC()
				evs := make([]string, 100)
				for i := range evs {
					at := now.Add(-time.Duration(rng.Int64N(int64(34 * 24 * time.Hour))))
					evs[i] = fmt.Sprintf(`{"event_id":%q,"endpoint":"GET /v1/history","method":"GET","status_code":200,"latency_ms":3,"occurred_at":%q}`,
						uuid.NewString(), at.Format(time.RFC3339Nano))
				}
				resp, _ := h.Handle(ctx, request("POST", "/v1/events", map[string]string{"X-Api-Key": n.backfillerKey},
					`{"events":[`+strings.Join(evs, ",")+`]}`))
				if ctx.Err() == nil {
					mu.Lock()
					backfill[resp.StatusCode]++
					mu.Unlock()
				}
				pause()
			}
		}()
	}
	recDone := make(chan struct{})
	go func() {
		defer close(recDone)
		for {
			select {
			case evs := <-n.backfilled:
				body, _ := json.Marshal(evs)
				msgs := []record.Message{{ID: uuid.NewString(), Body: body, AcceptedAt: time.Now()}}
				r, err := n.recorder.Record(context.Background(), msgs)
				for usage.ErrorCode(err) == usage.CodeUnavailable {
					r, err = n.recorder.Record(context.Background(), msgs) // as the queue would redeliver it
				}
				if err != nil {
					b.Error(err)
					return
				}
				recorded.Add(r.Inserted)
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() (statusCounts, statusCounts, int64) {
		cancel()
		wg.Wait()
		<-recDone
		for len(n.backfilled) > 0 {
			<-n.backfilled
		}
		return flood, backfill, recorded.Load()
	}
}
