package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// drain waits until the usage queue is empty (no message visible or in
// flight), no batch is in flight and the recorded and quarantined rows
// have not moved for three checks a second apart. It has no deadline of
// its own: ctx bounds it.
func (r *runner) drain(ctx context.Context) error {
	client := moto.SQS(r.state.SQSEndpoint, r.state.Region)
	rec := r.st.Lambda("record")
	last, stable := int64(-1), 0
	for stable < 3 {
		if err := ctx.Err(); err != nil {
			return err
		}
		sleep(ctx, time.Second)
		queued, err := queueDepth(ctx, client, r.state.QueueURL)
		if err != nil {
			stable = 0
			continue
		}
		var rows int64
		if err := r.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM eco_api_usage) + (SELECT count(*) FROM eco_rejected_events)`).Scan(&rows); err != nil {
			stable = 0
			continue
		}
		if queued == 0 && !rec.InFlight() && rows == last {
			stable++
		} else {
			stable = 0
		}
		last = rows
	}
	return nil
}

// queueDepth is a queue's messages visible plus in flight.
func queueDepth(ctx context.Context, client *sqs.Client, url string) (int, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range out.Attributes {
		c, _ := strconv.Atoi(v)
		n += c
	}
	return n, nil
}

// deadLetter is one message of the DLQ, decoded.
type deadLetter struct {
	id       string
	receives int // on the usage queue, before it moved
	events   []usage.Event
	rejected []record.Rejection
}

// deadLetters reads every message of the DLQ once, and makes them visible
// again for the redrive. The messages the soak put there itself are left
// out.
func (r *runner) deadLetters(ctx context.Context) ([]deadLetter, error) {
	client := moto.SQS(r.state.SQSEndpoint, r.state.Region)
	var all []deadLetter
	var handles []*string
	defer func() {
		for start := 0; start < len(handles); start += 10 {
			in := &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(r.state.DLQURL)}
			for i, h := range handles[start:min(start+10, len(handles))] {
				in.Entries = append(in.Entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: h})
			}
			if _, err := client.ChangeMessageVisibilityBatch(ctx, in); err != nil {
				r.report.mismatch("make the DLQ's messages visible again for the redrive: %v", err)
			}
		}
	}()
	for empty := 0; empty < 2; {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(r.state.DLQURL),
			MaxNumberOfMessages: 10, VisibilityTimeout: 600, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
		if err != nil {
			return nil, err
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			handles = append(handles, m.ReceiptHandle)
			r.mu.Lock()
			placed := r.placed[aws.ToString(m.MessageId)]
			r.mu.Unlock()
			if placed {
				continue
			}
			d := deadLetter{id: aws.ToString(m.MessageId)}
			// This receive, from the DLQ, is counted too.
			d.receives, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
			d.receives--
			d.events, d.rejected = record.Decode([]byte(aws.ToString(m.Body)), time.Now(), usage.DefaultBackfillWindow)
			all = append(all, d)
		}
	}
	return all, nil
}

// placeDeadLetters puts Config.DeadLetters messages of one valid event
// each in the DLQ, as an earlier outage would have left them (the first
// at the backfill window's edge), for the redrive to move back.
func (r *runner) placeDeadLetters(ctx context.Context) error {
	client := moto.SQS(r.state.SQSEndpoint, r.state.Region)
	for i := range r.cfg.DeadLetters {
		r.mu.Lock()
		s := r.gen.deadLetter(i == 0)
		body := string(s.it.encode(s.at))
		r.mu.Unlock()
		out, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(r.state.DLQURL), MessageBody: aws.String(body)})
		if err != nil {
			return fmt.Errorf("soak: put a message in the DLQ: %w", err)
		}
		r.mu.Lock()
		s.it.queued = true
		r.placed[aws.ToString(out.MessageId)] = true
		r.mu.Unlock()
		r.sent.Add(1)
	}
	return nil
}

// redrive moves the DLQ's messages back to the usage queue the way an
// operator does once an outage is over (make redrive): POST
// /v1/admin/redrive with the admin's token, until it says no more.
func (r *runner) redrive(ctx context.Context) error {
	client := &http.Client{Timeout: 30 * time.Second}
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.state.GatewayURL+"/v1/admin/redrive", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+r.state.Admin.Token)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("soak: POST /v1/admin/redrive: %w", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var res record.RedriveResult
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &res) != nil {
			return fmt.Errorf("soak: POST /v1/admin/redrive answered %s: %s", resp.Status, body)
		}
		r.report.Redriven += res.Moved
		if !res.More {
			return nil
		}
	}
	return ctx.Err()
}
