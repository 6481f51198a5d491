package record

import "context"

// Redriver moves the usage messages of the dead-letter queue back to the
// usage queue, once the cause of their failures is fixed.
type Redriver interface {
	// Redrive moves messages until the dead-letter queue answers empty or
	// ctx ends. A message moved keeps its body and its first acceptance
	// (AcceptedAtAttribute), so that its events are judged as old as they
	// were; one moved twice (a failure between its copy and its deletion)
	// is recorded once all the same. Errors are CodeUnavailable when a
	// queue cannot be reached; the result counts what was moved before.
	Redrive(ctx context.Context) (RedriveResult, error)
}

// RedriveResult is what a Redrive moved.
type RedriveResult struct {
	// Moved counts the messages now in the usage queue.
	Moved int `json:"moved"`
	// More reports that the dead-letter queue may hold more (the run
	// stopped at its deadline): run it again.
	More bool `json:"more"`
}
