package record

import "time"

// Redelivery is the record path's backoff on infrastructure failures. A
// message whose batch failed for a reason not its data's (the database
// unreachable, busy or too slow) is hidden from the queue for
// Delay(receives) before the queue delivers it again, the delay doubling
// from Base with each receive up to Max: an outage costs a few attempts
// per message, not one per visibility timeout, and the queue's
// maxReceiveCount receives span a long outage (Outlasts) instead of
// moving the backlog to the dead-letter queue.
type Redelivery struct {
	Base, Max time.Duration
}

// DefaultRedelivery is the record function's schedule: 1, 2, 4, 8 minutes,
// then every 15 minutes. With the usage queue's maxReceiveCount of 30 it
// rides out an outage of 6 h 30 min (template.yaml has the arithmetic).
var DefaultRedelivery = Redelivery{Base: time.Minute, Max: 15 * time.Minute}

// MaxVisibilityTimeout is the longest an SQS message can be hidden.
const MaxVisibilityTimeout = 12 * time.Hour

// Delay is how long a message received receives times (its
// ApproximateReceiveCount, 1 on the first delivery) waits after a failed
// batch: Base·2^(receives−1), at most Max and MaxVisibilityTimeout, in
// whole seconds (SQS's unit), at least 1 s.
func (r Redelivery) Delay(receives int) time.Duration {
	d := max(r.Base, time.Second)
	for n := 1; n < receives && d < r.Max; n++ {
		d *= 2
	}
	d = min(d, max(r.Max, time.Second), MaxVisibilityTimeout)
	return (d + time.Second - 1).Truncate(time.Second)
}

// Outlasts is the longest infrastructure outage a message first received
// at its start survives with the queue's maxReceives: its last receive
// comes Delay(1) + … + Delay(maxReceives−1) after its first (each failed
// receive hides it that long; processing time only adds), and succeeds if
// the outage is over by then. A message that fails its last receive goes
// to the dead-letter queue.
func (r Redelivery) Outlasts(maxReceives int) time.Duration {
	var total time.Duration
	for n := 1; n < maxReceives; n++ {
		total += r.Delay(n)
	}
	return total
}
