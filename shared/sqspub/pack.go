package sqspub

import (
	"encoding/json"

	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// message is one SQS message: a JSON array of events, and their
// positions in the events given to pack.
type message struct {
	body   string
	events []usage.Event
	pos    []int
}

// pack groups events into messages of at most record.MaxEventsPerMessage
// events and maxBytes bytes, and messages into batches of at most
// MaxBatchEntries entries and maxBytes bytes. The positions of events
// whose JSON alone exceeds maxBytes are returned apart.
func pack(events []usage.Event, maxBytes int) (batches [][]message, tooBig []int) {
	var (
		msgs  []message
		cur   []usage.Event
		pos   []int
		body  = []byte{'['}
		flush = func() {
			if len(cur) > 0 {
				msgs = append(msgs, message{body: string(append(body, ']')), events: cur, pos: pos})
			}
			cur, pos, body = nil, nil, []byte{'['}
		}
	)
	for i, e := range events {
		js, err := json.Marshal(e)
		if err != nil || len(js)+2 > maxBytes {
			tooBig = append(tooBig, i)
			continue
		}
		if len(cur) == record.MaxEventsPerMessage || len(body)+1+len(js)+1 > maxBytes {
			flush()
		}
		if len(cur) > 0 {
			body = append(body, ',')
		}
		body = append(body, js...)
		cur = append(cur, e)
		pos = append(pos, i)
	}
	flush()
	var b []message
	size := 0
	for _, m := range msgs {
		if len(b) == MaxBatchEntries || size+len(m.body) > maxBytes {
			batches = append(batches, b)
			b, size = nil, 0
		}
		b = append(b, m)
		size += len(m.body)
	}
	if len(b) > 0 {
		batches = append(batches, b)
	}
	return batches, tooBig
}
