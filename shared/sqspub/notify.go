package sqspub

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

// NotifyQueue sends the notification workflow's messages (notify.Queue)
// to the notify queue: an event to fan out or a delivery to attempt, each
// hidden for its delay (SQS's DelaySeconds, at most 15 minutes).
type NotifyQueue struct {
	api      SendMessageBatchAPI
	queueURL string
}

var _ notify.Queue = (*NotifyQueue)(nil)

// NewNotifyQueue returns a queue sending to queueURL.
func NewNotifyQueue(api SendMessageBatchAPI, queueURL string) *NotifyQueue {
	return &NotifyQueue{api: api, queueURL: queueURL}
}

// Send implements notify.Queue: SendMessageBatch, ten messages a call. A
// failed call or entry is CodeUnavailable; the messages it carried are
// then found by the dispatcher's sweep.
func (q *NotifyQueue) Send(ctx context.Context, msgs []notify.Message) error {
	for start := 0; start < len(msgs); start += 10 {
		in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.queueURL)}
		for i, m := range msgs[start:min(start+10, len(msgs))] {
			body, err := json.Marshal(m)
			if err != nil {
				return fmt.Errorf("encode notify message: %w", err)
			}
			delay := min(max(m.Delay, 0), notify.MaxQueueDelay)
			in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
				MessageBody: aws.String(string(body)), DelaySeconds: int32((delay + time.Second - 1) / time.Second)})
		}
		out, err := q.api.SendMessageBatch(ctx, in)
		if err != nil {
			return fmt.Errorf("%w: %v", usage.Errorf(usage.CodeUnavailable, "the notify queue cannot be reached"), err)
		}
		if len(out.Failed) > 0 {
			return usage.Errorf(usage.CodeUnavailable, "the notify queue refused %d messages (%s)", len(out.Failed), aws.ToString(out.Failed[0].Code))
		}
	}
	return nil
}
