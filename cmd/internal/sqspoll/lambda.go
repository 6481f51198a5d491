package sqspoll

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
)

// Invoker invokes a Lambda function with a JSON payload (a function under
// the emulator, *rie.Lambda).
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// LambdaHandler is the Handler that invokes fn with the SQS event and reads
// its partial batch response, as the event source mapping does. An error
// of the invocation or of the function fails the whole batch.
func LambdaHandler(fn Invoker) Handler {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		payload, err := json.Marshal(ev)
		if err != nil {
			return resp, err
		}
		out, err := fn.Invoke(ctx, payload)
		if err != nil {
			return resp, err
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			return resp, fmt.Errorf("the function's response: %w", err)
		}
		return resp, nil
	}
}
