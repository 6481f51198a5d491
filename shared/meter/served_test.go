package meter_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// TestHTTPCountsWhatWasSent: the net/http flavour, in front of a real
// server, counts what the server sent: the final status after 103 Early
// Hints, no body for HEAD, a handler that panics as a 500 (or the status
// it had sent), the panic going on to the server; and handlers that check
// for http.Flusher or http.Hijacker with a type assertion (server-sent
// events, WebSocket upgrades) find them, an upgrade counted as 101.
func TestHTTPCountsWhatWasSent(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		header  http.Header
		handler func(t *testing.T) http.HandlerFunc
		status  int
		bytes   int64
	}{
		{"early hints", "GET", nil, func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Link", "</app.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("down"))
			}
		}, 503, 4},
		{"HEAD", "HEAD", nil, func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "10")
				_, _ = w.Write([]byte("0123456789")) // as http.ServeContent does; the server sends none of it
			}
		}, 200, 0},
		{"flushed through a type assertion", "GET", nil, func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				f, ok := w.(http.Flusher)
				if !ok {
					t.Error("the metered writer is not an http.Flusher: a server-sent events handler cannot stream")
					return
				}
				_, _ = w.Write([]byte("data: 1\n\n"))
				f.Flush()
			}
		}, 200, 9},
		{"upgraded through a type assertion", "GET", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"nexus-test"}}, func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				hj, ok := w.(http.Hijacker)
				if !ok {
					t.Error("the metered writer is not an http.Hijacker: a WebSocket handler cannot upgrade")
					return
				}
				conn, buf, err := hj.Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: nexus-test\r\n\r\n")
				_ = buf.Flush()
			}
		}, 101, 0},
		{"panic", "GET", nil, func(*testing.T) http.HandlerFunc {
			return func(http.ResponseWriter, *http.Request) { panic("the handler failed") }
		}, 500, 0},
		{"panic after its status", "GET", nil, func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusAccepted)
				_, _ = w.Write([]byte("part"))
				panic("the handler failed")
			}
		}, 202, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testkit.NewClock(t0)
			a, key, _, _ := authenticator(t, clk)
			pub := &publisher{}
			m := meter.New(a, &checker{d: allowed}, pub, meter.Options{Now: clk.Now})
			srv := httptest.NewUnstartedServer(m.HTTP(tt.handler(t)))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the panics' stacks
			srv.Start()
			defer srv.Close()

			req, err := http.NewRequest(tt.method, srv.URL+"/v1/stream", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header.Clone()
			if req.Header == nil {
				req.Header = http.Header{}
			}
			req.Header.Set("X-Api-Key", key)
			if resp, err := srv.Client().Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			srv.Close() // every handler has returned or panicked

			pub.mu.Lock()
			defer pub.mu.Unlock()
			if len(pub.events) != 1 {
				t.Fatalf("%d events published; want 1", len(pub.events))
			}
			if e := pub.events[0]; e.StatusCode != tt.status || e.ResponseBytes != tt.bytes {
				t.Errorf("counted status %d, %d bytes; want %d, %d", e.StatusCode, e.ResponseBytes, tt.status, tt.bytes)
			}
		})
	}
}

// TestLambdaCountsWhatWasSent: the Lambda flavour counts a handler that
// panics as a 500, the panic going on to the runtime, and no body for
// HEAD.
func TestLambdaCountsWhatWasSent(t *testing.T) {
	clk := testkit.NewClock(t0)
	a, key, _, _ := authenticator(t, clk)
	call := func(method string, h meter.LambdaHandler) (*publisher, any) {
		pub := &publisher{}
		m := meter.New(a, &checker{d: allowed}, pub, meter.Options{Now: clk.Now})
		req := events.APIGatewayV2HTTPRequest{RouteKey: method + " /v1/games/{id}", RawPath: "/v1/games/42",
			Headers: map[string]string{"x-api-key": key}}
		req.RequestContext.HTTP.Method = method
		var recovered any
		func() {
			defer func() { recovered = recover() }()
			_, _ = m.Lambda(h)(context.Background(), req)
		}()
		return pub, recovered
	}
	pub, p := call("GET", func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		panic("the handler failed")
	})
	if p != "the handler failed" {
		t.Errorf("recovered %v; want the handler's panic to go on", p)
	}
	if len(pub.events) != 1 || pub.events[0].StatusCode != 500 || pub.flushes != 1 {
		t.Errorf("a panic: %d events (%+v), %d flushes; want one 500, flushed", len(pub.events), pub.events, pub.flushes)
	}
	pub, _ = call("HEAD", func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "0123456789"}, nil
	})
	if len(pub.events) != 1 || pub.events[0].ResponseBytes != 0 {
		t.Errorf("HEAD: %+v; want one event of 0 response bytes", pub.events)
	}
}

// hungKeys is an API key store that never answers (a database behind a
// partition): each lookup waits for its context.
type hungKeys struct{ keys }

func (hungKeys) APIKeyByHash(ctx context.Context, _ []byte) (*usage.APIKey, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestDecisionBounded: a request whose caller cannot be authenticated
// because the key store does not answer is refused with a 503 and a
// Retry-After in our words at the middleware's decision bound, whatever
// its own context (a platform service's requests often have no deadline),
// and its handler does not run.
func TestDecisionBounded(t *testing.T) {
	clk := testkit.NewClock(t0)
	a, key, _, _ := authenticator(t, clk)
	a.Keys = hungKeys{}
	pub := &publisher{}
	m := meter.New(a, &checker{d: allowed}, pub, meter.Options{Now: clk.Now, DecisionTimeout: 50 * time.Millisecond})
	h := m.HTTP(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("the handler ran") }))
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		req := httptest.NewRequest("GET", "/v1/games/42", nil)
		req.Header.Set("X-Api-Key", key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		done <- rec
	}()
	select {
	case rec := <-done:
		body := rec.Body.String()
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
			!strings.Contains(body, "could not be authenticated and its limits checked within 50ms") {
			t.Errorf("answer %d (Retry-After %q) %s; want a 503 with a Retry-After in our words", rec.Code, rec.Header().Get("Retry-After"), body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a request whose key store never answers had not been answered after 30 s; want a 503 at the 50ms decision bound")
	}
	if len(pub.events) != 0 {
		t.Errorf("%d events published for a refused request", len(pub.events))
	}
}
