package devstack

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/webhook"
)

// TestReceiver: the local receiver answers 204 to a webhook signed with
// its endpoint's secret and 401 to one signed with another, marks a
// webhook-id it saw before as a duplicate, and lists what it got.
func TestReceiver(t *testing.T) {
	secret, err := notify.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, err := notify.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{secret: secret, seen: map[string]bool{}}
	h := rc.handler(&Stack{logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	body := []byte(`{"type":"usage.threshold.reached","timestamp":"2026-03-15T12:00:00Z","data":{"user_id":"u1","threshold_calls":800}}`)
	post := func(id, with string) int {
		hdr, err := webhook.Headers(notify.Request{MessageID: id, Timestamp: time.Now(), Body: body, Secrets: []string{with}})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(body))
		req.Header = hdr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	if c := post("msg_1", secret); c != http.StatusNoContent {
		t.Errorf("signed with the secret: %d", c)
	}
	if c := post("msg_1", secret); c != http.StatusNoContent {
		t.Errorf("again: %d", c)
	}
	if c := post("msg_2", other); c != http.StatusUnauthorized {
		t.Errorf("signed with another secret: %d; want 401", c)
	}
	got := rc.received()
	if len(got) != 3 || !got[0].Verified || got[0].Duplicate || !got[1].Duplicate || got[2].Verified || got[2].Error == "" ||
		got[0].Type != "usage.threshold.reached" || got[0].UserID != "u1" {
		t.Errorf("received %+v", got)
	}
}
