// Package sqspub is the producer side of the usage pipeline: a
// usage.Publisher that buffers events and sends them to the usage queue as
// JSON arrays packed into SendMessageBatch calls (at most 10 entries and
// 256 KiB per call, at most record.MaxEventsPerMessage events per message).
//
// It flushes when BatchSize events are buffered or the oldest is MaxAge old,
// and on Flush, which a Lambda handler calls before it returns (a frozen
// Lambda runs no timers). Entries that SQS reports as failed are retried
// with backoff; events that still cannot be sent stay buffered for the next
// flush. The buffer is bounded: by default Publish blocks for room up to
// BlockTimeout and then returns CodeUnavailable; with Overflow: Drop it
// refuses at once. Every refused event is counted (Stats) and logged, and
// Close counts and logs any event it could not send: nothing is dropped
// silently.
//
// Example publishes an event and flushes, as a Lambda handler does.
package sqspub
