package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/webhook"
)

// TestClientRefusesPrivateAddresses: outside the local stack, no
// connection goes to a loopback, private or link-local address, by IP or
// by a host name that resolves to one (the check runs on the dialled
// address); the receiver is never reached. With AllowPrivate (the local
// stack) the same receiver gets a signed request.
func TestClientRefusesPrivateAddresses(t *testing.T) {
	var hits atomic.Int32
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	secret := mustSecret(t)
	req := func(url string) notify.Request {
		return notify.Request{URL: url, MessageID: "msg_1", Timestamp: time.Now(), Body: []byte(`{}`), Secrets: []string{secret}}
	}
	c := webhook.New(webhook.Options{Timeout: 2 * time.Second})
	for _, url := range []string{srv.URL, "http://localhost" + port, "http://[::1]" + port,
		"http://10.0.0.1" + port, "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]" + port,
		"http://[::1%25lo]" + port, "http://[fe80::1%25lo]" + port} {
		res := c.Send(context.Background(), req(url))
		if res.Outcome != notify.OutcomeRefused || !strings.Contains(res.Answer, "private, loopback, link-local") {
			t.Errorf("%s: %+v, want refused", url, res)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the receiver was reached %d times", n)
	}

	local := webhook.New(webhook.Options{AllowPrivate: true, Timeout: 2 * time.Second})
	res := local.Send(context.Background(), req(srv.URL))
	if res.Outcome != notify.OutcomeDelivered || res.StatusCode != http.StatusNoContent {
		t.Fatalf("local stack: %+v", res)
	}
	if err := webhook.Verify(secret, got, []byte(`{}`), time.Now(), 0); err != nil {
		t.Fatalf("the request received does not verify: %v", err)
	}
	if ua := got.Get("User-Agent"); ua != webhook.UserAgent {
		t.Errorf("User-Agent %q", ua)
	}
}

// TestClientDoesNotFollowRedirects: a 3xx is a failed attempt and its
// target is never requested (a redirect to an internal address would
// otherwise get around the address check).
func TestClientDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/internal" {
			followed.Store(true)
			return
		}
		http.Redirect(w, r, "/internal", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c := webhook.New(webhook.Options{AllowPrivate: true, Timeout: 2 * time.Second})
	res := c.Send(context.Background(), notify.Request{URL: srv.URL + "/hook", MessageID: "msg_1", Timestamp: time.Now(),
		Body: []byte(`{}`), Secrets: []string{mustSecret(t)}})
	if res.Outcome != notify.OutcomeFailed || res.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(res.Answer, "do not follow") {
		t.Fatalf("%+v", res)
	}
	if followed.Load() {
		t.Fatal("the redirect was followed")
	}
}

// TestClientTimeout: an endpoint that does not answer within the
// attempt's timeout is a failed attempt, worded as such.
func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	c := webhook.New(webhook.Options{AllowPrivate: true, Timeout: 50 * time.Millisecond})
	res := c.Send(context.Background(), notify.Request{URL: srv.URL, MessageID: "msg_1", Timestamp: time.Now(),
		Body: []byte(`{}`), Secrets: []string{mustSecret(t)}})
	if res.Outcome != notify.OutcomeFailed || res.Answer != "no answer within 50ms" {
		t.Fatalf("%+v", res)
	}
}
