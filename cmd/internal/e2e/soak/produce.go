package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/usage"
)

// publish queues one copy through the SQS publisher, waiting for room
// while the buffer is full (moto_server down, the queue gone).
func (r *runner) publish(ctx context.Context, s send) {
	e := s.it.ev
	e.OccurredAt = s.at
	for ctx.Err() == nil {
		err := r.pub.Publish(ctx, e)
		if err == nil {
			r.mu.Lock()
			s.it.queued = true
			r.mu.Unlock()
			return
		}
		if usage.ErrorCode(err) == usage.CodeInvalid {
			r.report.mismatch("the publisher refused event %s, which the soak made valid: %s", e.EventID, usage.ErrorMessage(err))
			return
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// closePublisher sends whatever the publisher still holds, however long
// the queue takes to come back, then closes it.
func (r *runner) closePublisher(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := r.pub.Flush(ctx); err == nil {
			break
		}
		sleep(ctx, 200*time.Millisecond)
	}
	if err := r.pub.Close(ctx); err != nil {
		return fmt.Errorf("soak: the publisher lost events: %w", err)
	}
	_, r.report.PublisherDropped = r.pub.Stats()
	return nil
}

// rawMsg is one raw message and the copies it carries.
type rawMsg struct {
	body  string
	sends []send
}

// sendRaw packs the copies it receives into raw messages of one to 20
// events (a lone event as an object, more as an array; bad JSON alone)
// and sends them ten at a time, until in is closed.
func (r *runner) sendRaw(ctx context.Context, in <-chan send, fail func(error)) {
	client := moto.SQS(r.state.SQSEndpoint, r.state.Region)
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0x4a3))
	var (
		cur    []send
		msgs   []rawMsg
		target = 1 + rng.IntN(20)
	)
	closeMsg := func() {
		if len(cur) == 0 {
			return
		}
		var body []byte
		if len(cur) == 1 {
			body = cur[0].it.encode(cur[0].at)
		} else {
			body = append(body, '[')
			for i, s := range cur {
				if i > 0 {
					body = append(body, ',')
				}
				body = append(body, s.it.encode(s.at)...)
			}
			body = append(body, ']')
		}
		msgs = append(msgs, rawMsg{body: string(body), sends: cur})
		cur, target = nil, 1+rng.IntN(20)
	}
	flush := func() {
		closeMsg()
		if len(msgs) > 0 {
			if err := r.sendMessages(ctx, client, msgs); err != nil {
				fail(err)
			}
			msgs = nil
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case s, ok := <-in:
			if !ok {
				flush()
				return
			}
			if s.it.kind == "bad-json" {
				msgs = append(msgs, rawMsg{body: s.it.body, sends: []send{s}})
			} else if cur = append(cur, s); len(cur) >= target {
				closeMsg()
			}
			if len(msgs) >= 10 {
				flush()
			}
		case <-tick.C:
			flush()
		case <-ctx.Done():
			return
		}
	}
}

// sendMessages sends the messages ten at a time, each SendMessageBatch
// again and again for the entries that fail, until all are sent.
func (r *runner) sendMessages(ctx context.Context, client *sqs.Client, msgs []rawMsg) error {
	for len(msgs) > 10 {
		if err := r.sendMessages(ctx, client, msgs[:10]); err != nil {
			return err
		}
		msgs = msgs[10:]
	}
	pending := map[string]rawMsg{}
	for i, m := range msgs {
		pending[strconv.Itoa(i)] = m
	}
	for attempts := 0; len(pending) > 0; {
		in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(r.state.QueueURL)}
		for id, m := range pending {
			in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(m.body)})
		}
		r.pause.RLock()
		out, err := client.SendMessageBatch(ctx, in)
		r.pause.RUnlock()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// moto_server restarting, the queue not yet restored.
			if attempts++; attempts%50 == 0 {
				r.log.Warn("soak: raw messages not sent yet", "attempts", attempts, "error", err)
			}
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		for _, f := range out.Failed {
			if f.SenderFault {
				return fmt.Errorf("soak: SQS refused a raw message: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
			}
		}
		r.mu.Lock()
		for _, ok := range out.Successful {
			for _, s := range pending[aws.ToString(ok.Id)].sends {
				s.it.queued = true
			}
			delete(pending, aws.ToString(ok.Id))
		}
		r.mu.Unlock()
	}
	return nil
}

// sendHTTP posts the copies it receives to POST /v1/events in requests
// of one to 100 events (bad JSON alone), until in is closed.
func (r *runner) sendHTTP(ctx context.Context, in <-chan send, fail func(error)) {
	key := ""
	for _, u := range r.state.Users {
		if u.UserID == seed.EnterpriseUserID {
			key = u.APIKey
		}
	}
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0x477))
	var (
		batch  []send
		target = 1 + rng.IntN(100)
	)
	flush := func() {
		if len(batch) > 0 {
			r.post(ctx, key, batch)
			batch, target = nil, 1+rng.IntN(100)
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case s, ok := <-in:
			if !ok {
				flush()
				return
			}
			if s.it.kind == "bad-json" {
				flush()
				r.post(ctx, key, []send{s})
				continue
			}
			if batch = append(batch, s); len(batch) >= target {
				flush()
			}
		case <-tick.C:
			flush()
		case <-ctx.Done():
			return
		}
	}
}

// eventResults is the answer of POST /v1/events.
type eventResults struct {
	Accepted int `json:"accepted"`
	Results  []struct {
		Index  int    `json:"index"`
		Status string `json:"status"`
		Param  string `json:"param"`
	} `json:"results"`
}

// post sends one request, again after a 429 (when its Retry-After says),
// a 5xx or a network error, records each event's answer, and sends the
// events the answer calls failed (the queue could not be reached for
// them) again, with the same ids.
func (r *runner) post(ctx context.Context, key string, batch []send) {
	client := &http.Client{Timeout: 30 * time.Second}
	for len(batch) > 0 && ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.state.GatewayURL+"/v1/events", bytes.NewReader(requestBody(batch)))
		if err != nil {
			panic(err) // a fixed method and a URL that parsed at start
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(auth.APIKeyHeader, key)
		r.pause.RLock()
		resp, err := client.Do(req)
		var answer []byte
		if err == nil {
			answer, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		r.pause.RUnlock()
		switch {
		case err != nil || resp.StatusCode >= 500:
			r.httpRetries.Add(1)
			sleep(ctx, 300*time.Millisecond)
			continue
		case resp.StatusCode == http.StatusTooManyRequests:
			r.httpRetries.Add(1)
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			sleep(ctx, wait)
			continue
		}
		if batch = r.answer(batch, resp.StatusCode, answer); len(batch) > 0 {
			r.httpRetries.Add(1)
			sleep(ctx, 300*time.Millisecond)
		}
	}
}

// requestBody is the body of POST /v1/events carrying batch.
func requestBody(batch []send) []byte {
	if len(batch) == 1 && batch[0].it.kind == "bad-json" {
		return []byte(batch[0].it.body)
	}
	body := []byte(`{"events":[`)
	for i, s := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, s.it.encode(s.at)...)
	}
	return append(body, "]}"...)
}

// answer records the edge's answer to the request that carried batch,
// and returns the copies it answered failed, to send again.
func (r *runner) answer(batch []send, status int, body []byte) (again []send) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var res eventResults
	if status != http.StatusAccepted || json.Unmarshal(body, &res) != nil || len(res.Results) != len(batch) {
		if !(status == http.StatusBadRequest && batch[0].it.kind == "bad-json") {
			r.report.mismatch("POST /v1/events of %d events answered %d: %.300s", len(batch), status, body)
		}
		for _, s := range batch {
			if s.it.edge == "" {
				s.it.edge = "refused"
			}
		}
		return nil
	}
	for i, s := range batch {
		res := res.Results[i]
		switch {
		case res.Status == "failed":
			again = append(again, s)
			continue
		case res.Status == "accepted":
			s.it.queued = true
		}
		if s.it.edge == "" {
			s.it.edge, s.it.edgeParam = res.Status, res.Param
		}
	}
	return again
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}
