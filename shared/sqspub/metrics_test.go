package sqspub

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestDropsReportedAsMetric: an event the full buffer refuses is reported
// at once as an Embedded Metric Format line, UsageEventsDropped 1, and the
// events published are reported when the publisher closes.
func TestDropsReportedAsMetric(t *testing.T) {
	var log bytes.Buffer
	p := newPublisher(&fakeSQS{}, "https://sqs.example/123/usage", Options{BatchSize: 1, BufferSize: 1, MaxAge: time.Hour,
		Overflow: Drop, Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	ctx := context.Background()
	// Hold the one slot so that the next event finds the buffer full.
	p.slots <- struct{}{}
	if err := p.Publish(ctx, event("GET /a")); err == nil {
		t.Fatal("Publish into a full buffer = nil; want a refusal")
	}
	<-p.slots
	if err := p.Publish(ctx, event("GET /b")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var dropped, published int64
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		aws, ok := m["_aws"].(map[string]any)
		if !ok {
			continue
		}
		cw := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
		if cw["Namespace"] != MetricsNamespace || m["Queue"] != "usage" {
			t.Errorf("metric line %s: want namespace %s and queue usage", line, MetricsNamespace)
		}
		dropped += int64(m["UsageEventsDropped"].(float64))
		published += int64(m["UsageEventsPublished"].(float64))
	}
	if dropped != 1 || published != 1 {
		t.Errorf("metrics report %d dropped, %d published; want 1 and 1\n%s", dropped, published, log.String())
	}
	if pub, drop := p.Stats(); pub != 1 || drop != 1 {
		t.Errorf("Stats() = %d, %d; want 1, 1", pub, drop)
	}
}
