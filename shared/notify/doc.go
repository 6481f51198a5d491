// Package notify is the notification workflow: usage alerts that reach
// people. It imports only the domain (shared/usage); shared/postgres keeps
// its state, shared/webhook signs and sends, shared/alerts puts events on
// the bus, shared/sqspub queues.
//
// Rules (Rule) belong to a plan (its users' defaults) or to one user: a
// percentage of the included calls, a number of calls, an amount of
// overage to date, the hard quota reached. The record path cannot price
// or read terms, so a user's rules become calls thresholds of one billing
// period in Go (Thresholds, by the Armer), and the record transaction
// compares the period's counters with them: the first batch that reaches
// a threshold raises its event into the outbox, in the counters' own
// transaction, once per user, period and rule (the notifications part of
// migrations/00001_baseline.sql has the locking that makes it so under
// concurrent batches, redeliveries, late events and restarts).
//
// Events are delivered by the Dispatcher (the deliver function): to every
// enabled endpoint that wants them, the user's own and the platform's,
// signed as Standard Webhooks specifies, at least once, with retries on
// Schedule, a log of every attempt, replay (Service.Replay), and an
// endpoint disabled after failing for DispatcherConfig.DisableAfter; and onto the bus.
//
//	th := notify.Thresholds(sub, rules, period, now) // 80 % of 1,000 included: 800 calls
//	fired, armed, err := (&notify.Armer{Store: store, Now: time.Now}).ArmPending(ctx, 0)
//	d, err := notify.NewDispatcher(notify.DispatcherConfig{Store: store, Sender: webhook.New(webhook.Options{}), Now: time.Now, Logger: logger})
//	err = d.HandleEvent(ctx, fired[0])
//
// Example_thresholds (example_test.go) runs the first step.
package notify
