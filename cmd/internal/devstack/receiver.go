package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/webhook"
)

// Received is one webhook the local receiver got (GET /webhooks on the
// admin endpoint).
type Received struct {
	// ID is its webhook-id: the event's, the same on every attempt.
	ID     string `json:"id"`
	Type   string `json:"type"`
	UserID string `json:"user_id,omitempty"`
	// Verified says whether its signature verified with the endpoint's
	// secret (Error says why not); it was answered 401 if not.
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
	// Duplicate marks a webhook-id received before (a redelivery).
	Duplicate  bool            `json:"duplicate,omitempty"`
	ReceivedAt time.Time       `json:"received_at"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// receiver is the local stack's webhook receiver.
type receiver struct {
	secret string
	mu     sync.Mutex
	got    []Received
	seen   map[string]bool
}

// maxReceived bounds what the receiver keeps.
const maxReceived = 10_000

// serveReceiver starts the webhook receiver and registers it as a
// platform endpoint of every event type (the deliver function may reach
// loopback here: WEBHOOK_ALLOW_PRIVATE).
func (s *Stack) serveReceiver(ctx context.Context) error {
	rc := &receiver{seen: map[string]bool{}}
	url, err := s.serve(s.cfg.ReceiverAddr, rc.handler(s))
	if err != nil {
		return fmt.Errorf("webhook receiver: %w", err)
	}
	svc := &notify.Service{Store: postgres.NewNotifyStore(s.db), AllowPrivate: true, Now: time.Now}
	hook, desc := url+"/webhooks", "the local stack's receiver (make dev)"
	e, err := svc.CreateEndpoint(ctx, notify.Owner{Admin: true}, "", notify.EndpointInput{URL: &hook, Description: &desc})
	if err != nil {
		return fmt.Errorf("register the webhook receiver: %w", err)
	}
	rc.secret = e.Secret
	s.receiver, s.state.ReceiverURL = rc, hook
	return nil
}

// handler verifies each webhook's signature, prints it and answers 204
// (401 when the signature does not verify).
func (rc *receiver) handler(s *Stack) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		now := time.Now()
		got := Received{ID: r.Header.Get(webhook.HeaderID), ReceivedAt: now}
		var p struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		_ = json.Unmarshal(body, &p)
		var user struct {
			UserID string `json:"user_id"`
		}
		_ = json.Unmarshal(p.Data, &user)
		got.Type, got.UserID, got.Data = p.Type, user.UserID, p.Data
		if err := webhook.Verify(rc.secret, r.Header, body, now, 0); err != nil {
			got.Error = err.Error()
		} else {
			got.Verified = true
		}
		rc.mu.Lock()
		got.Duplicate = rc.seen[got.ID]
		rc.seen[got.ID] = true
		if len(rc.got) < maxReceived {
			rc.got = append(rc.got, got)
		}
		rc.mu.Unlock()
		s.logger.Info("webhook received", "type", got.Type, "user", got.UserID, "webhook_id", got.ID,
			"verified", got.Verified, "duplicate", got.Duplicate, "error", got.Error, "data", string(got.Data))
		if !got.Verified {
			http.Error(w, "signature does not verify: "+got.Error, http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// received returns what the receiver got, in order.
func (rc *receiver) received() []Received {
	if rc == nil {
		return nil
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Received(nil), rc.got...)
}

// FetchWebhooks reads what a running stack's receiver got from its admin
// endpoint (the URL of State.AdminURL).
func FetchWebhooks(ctx context.Context, admin string) ([]Received, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/webhooks", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the received webhooks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("read the received webhooks: %s: %s", resp.Status, b)
	}
	var got []Received
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return nil, fmt.Errorf("read the received webhooks: %w", err)
	}
	return got, nil
}
