// Package sqspoll feeds an SQS Lambda handler from a real queue outside
// Lambda, the way Lambda's event source mapping does: it accumulates
// ReceiveMessage results (at most 10 messages each) into batches of up to
// BatchSize messages or Window, converts them into events.SQSEvent, calls
// the handler, and deletes only the messages the handler acknowledged.
// Messages reported in BatchItemFailures (or all of them when the handler
// returns an error) are left on the queue; they reappear after the
// visibility timeout, and the queue's redrive policy moves them to the DLQ
// after maxReceiveCount receives. Locally this runs against moto_server,
// and LambdaHandler hands the batches to a function under the emulator.
//
//	p := &sqspoll.Poller{Client: moto.SQS(endpoint, region), QueueURL: url,
//		Handler: sqspoll.LambdaHandler(record), Logger: logger}
//	err := p.Run(ctx) // until ctx is done
package sqspoll
