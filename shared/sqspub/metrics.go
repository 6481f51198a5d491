package sqspub

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// MetricsNamespace is the CloudWatch namespace of the publisher's metrics.
const MetricsNamespace = "NexusUsage"

// metricsInterval is how often published counts alone are reported.
const metricsInterval = time.Minute

// reportMetrics writes the events published and dropped since the last
// report as one CloudWatch Embedded Metric Format line (metrics
// UsageEventsPublished and UsageEventsDropped in MetricsNamespace, by
// Queue): at once when events were dropped, at most once a minute for
// published ones alone, and always when final. In Lambda the line becomes
// the metrics with no API call; an alarm on UsageEventsDropped > 0 says
// that usage went uncounted.
func (p *Publisher) reportMetrics(ctx context.Context, final bool) {
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	pub, drop := p.published.Load(), p.dropped.Load()
	dPub, dDrop := pub-p.reportedPub, drop-p.reportedDrop
	now := p.opts.Now()
	due := dDrop > 0 || (dPub > 0 && (final || now.Sub(p.reportedAt) >= metricsInterval))
	if !due {
		return
	}
	p.reportedPub, p.reportedDrop, p.reportedAt = pub, drop, now
	queue := p.queueURL[strings.LastIndexByte(p.queueURL, '/')+1:]
	level := slog.LevelInfo
	if dDrop > 0 {
		level = slog.LevelError
	}
	p.log.Log(ctx, level, "usage publisher metrics",
		"_aws", map[string]any{
			"Timestamp": now.UnixMilli(),
			"CloudWatchMetrics": []map[string]any{{
				"Namespace":  MetricsNamespace,
				"Dimensions": [][]string{{"Queue"}},
				"Metrics": []map[string]string{
					{"Name": "UsageEventsPublished", "Unit": "Count"},
					{"Name": "UsageEventsDropped", "Unit": "Count"},
				},
			}},
		},
		"Queue", queue, "UsageEventsPublished", dPub, "UsageEventsDropped", dDrop)
}
