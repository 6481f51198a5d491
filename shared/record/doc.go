// Package record turns queue messages into recorded usage, exactly once:
// the message format (Decode, at most MaxEventsPerMessage events a
// message, judged by when the queue accepted it), the Recorder over an
// EventStore (New: inserts, duplicates, quarantined rejections, each
// batch at one reading of its clock), how long a failed batch waits before
// its next receive (Redelivery), and the redrive of the dead-letter queue
// (Redriver).
//
// It imports the vocabulary (shared/usage) and nothing else of this
// module; shared/postgres implements its EventStore, shared/sqspub packs
// the messages it reads and implements its Redriver.
package record
