// Package soak is the fault soak of the metering pipeline: against the
// local stack (package devstack, with a database of its own), producers
// send events through the usage queue (the SQS publisher of shared/sqspub,
// messages of up to 100 events, and raw messages for what the publisher
// refuses) and through the metered HTTP path (POST /v1/events with an API
// key, through the local API Gateway to the analytics function), with
// duplicates (some re-stamped with another occurred_at), late events,
// invalid events of every kind and hostile values, while the record
// function is killed in mid-batch at random moments, PostgreSQL is
// restarted once and moto_server is restarted once. Then it checks, per
// event and per user and day, that every valid event was recorded and
// counted exactly once, that every invalid one is in the quarantine with
// its reason, and explains every message of the dead-letter queue.
//
// moto_server keeps its queues in memory, so its restart loses the
// messages not yet consumed, which real SQS never does. The soak makes
// that restart lossless the way a producer fleet's replay would: once the
// queues are back it sends again every event it had sent that is neither
// recorded nor quarantined, and the dedupe on event id makes the replay
// harmless. The figures count the replay apart.
//
//	st, stop, err := soak.StartStack(ctx, soak.StackOptions{Root: root, Bootstraps: bins})
//	if err != nil { ... }
//	defer stop()
//	rep, err := soak.Run(ctx, st, soak.Config{Events: 20_000, Seed: 1})
//	if err != nil { ... } // the soak could not run
//	rep.Print(os.Stdout)
//	if len(rep.Mismatches) > 0 { ... } // what the pipeline got wrong
package soak
