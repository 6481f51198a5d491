package stripetest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Recorder is a reverse proxy in front of a Stripe API (stripe-mock, in
// tests that need the real API's validation) that records every request:
// its method, path, idempotency key and form (the body of a POST, the query
// of a GET), and the status of the answer.
type Recorder struct {
	*httptest.Server

	mu       sync.Mutex
	requests []Request
}

// NewRecorder starts a recorder forwarding to target, closed at the end
// of the test.
func NewRecorder(tb testing.TB, target string) *Recorder {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatalf("stripetest: target %q: %v", target, err)
	}
	r := &Recorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if i, ok := resp.Request.Context().Value(requestIndex{}).(int); ok {
			r.mu.Lock()
			r.requests[i].Status = resp.StatusCode
			r.mu.Unlock()
		}
		return nil
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		form := req.URL.Query()
		if req.Method == http.MethodPost {
			form, _ = url.ParseQuery(string(body))
		}
		r.mu.Lock()
		r.requests = append(r.requests, Request{Method: req.Method, Path: req.URL.Path, Key: req.Header.Get("Idempotency-Key"), Form: form})
		i := len(r.requests) - 1
		r.mu.Unlock()
		proxy.ServeHTTP(w, req.WithContext(contextWithIndex(req, i)))
	}))
	tb.Cleanup(r.Close)
	return r
}

// Requests returns the recorded requests, in the order they came.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

type requestIndex struct{}

func contextWithIndex(req *http.Request, i int) context.Context {
	return context.WithValue(req.Context(), requestIndex{}, i)
}
