package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

const (
	benchEvents      = 100_000 // per measurement of the record path and of COPY
	benchNaiveEvents = 20_000  // the naive path is ~20x slower; its rate does not depend on the count
	benchBatch       = 100     // messages (one event each) per SQS batch; rows per COPY
)

func benchData(n int, now time.Time) []usage.Event {
	rng := rand.New(rand.NewPCG(7, 7))
	users := make([]string, 200)
	for i := range users {
		users[i] = uuid.NewString()
	}
	out := make([]usage.Event, n)
	for i := range out {
		id, _ := uuid.NewV7() // producers' ids are time-ordered
		out[i] = usage.Event{Version: 1, EventID: id.String(), UserID: users[rng.IntN(len(users))],
			Endpoint: "GET /v1/games/{id}", Method: "GET", StatusCode: []int{200, 200, 200, 404, 500}[rng.IntN(5)],
			LatencyMS: int64(rng.IntN(300)), RequestBytes: int64(rng.IntN(2000)), ResponseBytes: int64(rng.IntN(20000)),
			Quantity: 1, OccurredAt: now.Add(-time.Duration(rng.Int64N(int64(time.Hour))))}
	}
	return out
}

// BenchmarkRecordPath measures events/s of the record path (decoding,
// validation and the one-statement write of 100-message batches, one
// connection) against two baselines on the same table in the same run:
// COPY of the same rows in batches of 100 without dedupe or counters (the
// ceiling), and one INSERT plus one counter upsert per event, one
// transaction each (the naive design). Each measurement runs on a fresh
// database.
func BenchmarkRecordPath(b *testing.B) {
	var copyRate, naiveRate float64
	now := time.Now().UTC()

	b.Run("copy", func(b *testing.B) {
		db := pgtest.NewDB(b)
		ctx := context.Background()
		for range b.N {
			b.StopTimer()
			data := benchData(benchEvents, now)
			b.StartTimer()
			start := time.Now()
			for i := 0; i < len(data); i += benchBatch {
				chunk := data[i:min(i+benchBatch, len(data))]
				_, err := db.Pool.CopyFrom(ctx, pgx.Identifier{"eco_api_usage"},
					[]string{"event_id", "user_id", "api_key_id", "endpoint", "method", "status_code", "latency_ms",
						"request_bytes", "response_bytes", "quantity", "occurred_at", "received_at"},
					pgx.CopyFromSlice(len(chunk), func(j int) ([]any, error) {
						e := chunk[j]
						return []any{e.EventID, e.UserID, nil, e.Endpoint, e.Method, int16(e.StatusCode), int32(e.LatencyMS),
							e.RequestBytes, e.ResponseBytes, int32(e.Quantity), e.OccurredAt, now}, nil
					}))
				if err != nil {
					b.Fatal(err)
				}
			}
			copyRate = float64(len(data)) / time.Since(start).Seconds()
		}
		b.ReportMetric(copyRate, "events/s")
	})

	b.Run("naive", func(b *testing.B) {
		db := pgtest.NewDB(b)
		ctx := context.Background()
		for range b.N {
			b.StopTimer()
			data := benchData(benchNaiveEvents, now)
			b.StartTimer()
			start := time.Now()
			for _, e := range data {
				err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
					tag, err := tx.Exec(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code,
						latency_ms, request_bytes, response_bytes, quantity, occurred_at)
						VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
						e.EventID, e.UserID, e.Endpoint, e.Method, e.StatusCode, e.LatencyMS, e.RequestBytes, e.ResponseBytes, e.Quantity, e.OccurredAt)
					if err != nil || tag.RowsAffected() == 0 {
						return err
					}
					_, err = tx.Exec(ctx, `INSERT INTO eco_usage_counters AS k (user_id, day, calls) VALUES ($1, $2, $3)
						ON CONFLICT (user_id, day) DO UPDATE SET calls = k.calls + excluded.calls`,
						e.UserID, e.OccurredAt.Format(time.DateOnly), e.Quantity)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			naiveRate = float64(len(data)) / time.Since(start).Seconds()
		}
		b.ReportMetric(naiveRate, "events/s")
	})

	b.Run("record", func(b *testing.B) {
		db := pgtest.NewDB(b)
		h := &Handler{Events: postgres.NewEventStore(db), Logger: quiet, Now: time.Now}
		ctx := context.Background()
		var rate float64
		for range b.N {
			b.StopTimer()
			data := benchData(benchEvents, now)
			var batches []events.SQSEvent
			for i := 0; i < len(data); i += benchBatch {
				var ev events.SQSEvent
				for j, e := range data[i:min(i+benchBatch, len(data))] {
					body, _ := json.Marshal(e)
					ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("%d-%d", i, j), Body: string(body)})
				}
				batches = append(batches, ev)
			}
			b.StartTimer()
			start := time.Now()
			for _, ev := range batches {
				resp, err := h.Handle(ctx, ev)
				if err != nil || len(resp.BatchItemFailures) > 0 {
					b.Fatalf("Handle() = %+v, %v", resp, err)
				}
			}
			rate = float64(len(data)) / time.Since(start).Seconds()
			b.StopTimer()
			var rows int64
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_api_usage`).Scan(&rows); err != nil || rows == 0 {
				b.Fatalf("no rows recorded: %v", err)
			}
			b.StartTimer()
		}
		b.ReportMetric(rate, "events/s")
		if copyRate > 0 {
			b.ReportMetric(rate/copyRate, "x_copy")
		}
		if naiveRate > 0 {
			b.ReportMetric(rate/naiveRate, "x_naive")
		}
	})
}
