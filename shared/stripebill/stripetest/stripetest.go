// Package stripetest is a fake Stripe API for tests of billing: it creates
// and lists invoice items, enforces idempotency keys as Stripe does (the same
// key returns the first response, errors included, except 5xx and 429; the
// same key with other parameters is refused with an idempotency error),
// records every request, and fails on demand (the next n requests, or every
// request for a customer). With Upstream set it first sends each request
// to a real Stripe API (stripe-mock), whose validation a request must pass:
// stripe-mock keeps no state, the fake keeps the items. Recorder is a
// recording proxy in front of a real Stripe API, for tests that need its
// answers as they are.
package stripetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one recorded request.
type Request struct {
	Method string
	Path   string
	Key    string
	Form   url.Values
	Status int
	// Replayed is true when the response came from the idempotency store.
	Replayed bool
}

// Item is a created invoice item.
type Item struct {
	ID           string            `json:"id"`
	Object       string            `json:"object"`
	Customer     string            `json:"customer"`
	Subscription string            `json:"subscription,omitempty"`
	Amount       int64             `json:"amount"`
	Currency     string            `json:"currency"`
	Description  string            `json:"description"`
	Metadata     map[string]string `json:"metadata"`
	Period       struct {
		Start int64 `json:"start"`
		End   int64 `json:"end"`
	} `json:"period"`
	Key string `json:"-"`
}

type saved struct {
	status int
	body   []byte
	// params are the request's form, encoded: a key is tied to them.
	params string
	at     time.Time
}

// KeyWindow is how long the fake keeps an idempotency key when Server.Now
// is set: Stripe prunes keys once they are 24 hours old.
const KeyWindow = 24 * time.Hour

// Server is the fake. Its zero value is not usable; call New.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	requests  []Request
	items     []*Item
	keys      map[string]saved
	failNext  []int
	failPosts []int
	customers map[string]int

	// Now, when set, is the fake's clock: keys older than KeyWindow are
	// forgotten, as Stripe forgets them. Unset, keys are kept.
	Now func() time.Time
	// Upstream, when set, is a Stripe API (stripe-mock) every request is
	// sent to first: an answer of it other than 200 is the fake's answer.
	Upstream string
}

// validate sends r's request to Upstream and returns its answer when it
// refused it (ok false).
func (s *Server) validate(r *http.Request) (status int, body []byte, ok bool) {
	if s.Upstream == "" {
		return 0, nil, true
	}
	var req *http.Request
	var err error
	if r.Method == http.MethodPost {
		req, err = http.NewRequest(r.Method, s.Upstream+r.URL.Path, strings.NewReader(r.PostForm.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequest(r.Method, s.Upstream+r.URL.Path+"?"+r.URL.RawQuery, nil)
	}
	if err != nil {
		return http.StatusBadGateway, errorBody("api_error", "", err.Error()), false
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return http.StatusBadGateway, errorBody("api_error", "", "the upstream Stripe API did not answer"), false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.StatusCode == http.StatusOK
}

// New starts a fake closed at the end of the test.
func New(tb testing.TB) *Server {
	s := &Server{keys: map[string]saved{}, customers: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// FailNext makes the next len(statuses) requests answer with those statuses.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, statuses...)
}

// FailCustomer makes every create for the customer answer with status
// (402: card declined, 404: no such customer, …); with 404, the lists of
// the customer's items answer it too, as Stripe's do.
func (s *Server) FailCustomer(customer string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.customers[customer] = status
}

// FailNextCreates makes the next len(statuses) creates (POSTs of invoice
// items; lookups go through) answer with those statuses.
func (s *Server) FailNextCreates(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPosts = append(s.failPosts, statuses...)
}

// ClearFailures drops the failures FailNext and FailNextCreates queued and
// not used yet.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failPosts = nil, nil
}

// ForgetKeys drops the saved idempotency keys, as Stripe does after 24 h.
func (s *Server) ForgetKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = map[string]saved{}
}

// Requests returns the recorded requests.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Items returns the invoice items created, oldest first: the charges.
func (s *Server) Items() []Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Item, len(s.items))
	for i, it := range s.items {
		out[i] = *it
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	req := Request{Method: r.Method, Path: r.URL.Path, Key: r.Header.Get("Idempotency-Key"), Form: r.Form}
	status, body := s.handle(r, &req)
	req.Status = status
	s.requests = append(s.requests, req)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func errorBody(typ, code, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"type": typ, "code": code, "message": msg}})
	return b
}

func statusError(status int, customer string) []byte {
	switch status {
	case http.StatusPaymentRequired:
		return errorBody("card_error", "card_declined", "Your card was declined.")
	case http.StatusNotFound:
		return errorBody("invalid_request_error", "resource_missing", "No such customer: '"+customer+"'")
	case http.StatusTooManyRequests:
		return errorBody("invalid_request_error", "rate_limit", "Too many requests")
	case http.StatusUnauthorized:
		return errorBody("invalid_request_error", "", "Invalid API Key provided")
	}
	if status >= 500 {
		return errorBody("api_error", "", "Something went wrong on Stripe's end.")
	}
	return errorBody("invalid_request_error", "", http.StatusText(status))
}

func (s *Server) handle(r *http.Request, req *Request) (int, []byte) {
	if len(s.failNext) > 0 {
		st := s.failNext[0]
		s.failNext = s.failNext[1:]
		return st, statusError(st, r.Form.Get("customer"))
	}
	if status, body, ok := s.validate(r); !ok {
		return status, body
	}
	if len(s.failPosts) > 0 && r.Method == http.MethodPost {
		st := s.failPosts[0]
		s.failPosts = s.failPosts[1:]
		return st, statusError(st, r.Form.Get("customer"))
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/invoiceitems":
		params := r.Form.Encode()
		if req.Key != "" {
			if sv, ok := s.keys[req.Key]; ok && s.Now != nil && s.Now().Sub(sv.at) >= KeyWindow {
				delete(s.keys, req.Key)
			}
			if sv, ok := s.keys[req.Key]; ok {
				if sv.params != params {
					return http.StatusBadRequest, errorBody("idempotency_error", "",
						"Keys for idempotent requests can only be used with the same parameters they were first used with.")
				}
				req.Replayed = true
				return sv.status, sv.body
			}
		}
		status, body := s.create(r.Form, req.Key)
		if req.Key != "" && status < 500 && status != http.StatusTooManyRequests && status != http.StatusConflict {
			sv := saved{status: status, body: body, params: params}
			if s.Now != nil {
				sv.at = s.Now()
			}
			s.keys[req.Key] = sv
		}
		return status, body
	case r.Method == http.MethodGet && r.URL.Path == "/v1/invoiceitems":
		if c := r.Form.Get("customer"); s.customers[c] == http.StatusNotFound {
			return http.StatusNotFound, statusError(http.StatusNotFound, c)
		}
		return s.list(r.Form)
	}
	return http.StatusNotFound, errorBody("invalid_request_error", "", "Unrecognized request URL")
}

func (s *Server) create(f url.Values, key string) (int, []byte) {
	customer := f.Get("customer")
	if st, ok := s.customers[customer]; ok {
		return st, statusError(st, customer)
	}
	amount, err := strconv.ParseInt(f.Get("amount"), 10, 64)
	if err != nil || customer == "" || f.Get("currency") == "" {
		return http.StatusBadRequest, errorBody("invalid_request_error", "parameter_missing", "amount, currency and customer are required")
	}
	it := &Item{ID: fmt.Sprintf("ii_fake%06d", len(s.items)+1), Object: "invoiceitem", Customer: customer,
		Subscription: f.Get("subscription"), Amount: amount, Currency: f.Get("currency"),
		Description: f.Get("description"), Metadata: map[string]string{}, Key: key}
	it.Period.Start, _ = strconv.ParseInt(f.Get("period[start]"), 10, 64)
	it.Period.End, _ = strconv.ParseInt(f.Get("period[end]"), 10, 64)
	for k, v := range f {
		if len(k) > len("metadata[]") && k[:9] == "metadata[" && k[len(k)-1] == ']' {
			it.Metadata[k[9:len(k)-1]] = v[0]
		}
	}
	s.items = append(s.items, it)
	b, _ := json.Marshal(it)
	return http.StatusOK, b
}

// list answers GET /v1/invoiceitems?customer=…&limit=…&starting_after=…,
// newest first, as Stripe does.
func (s *Server) list(f url.Values) (int, []byte) {
	limit, _ := strconv.Atoi(f.Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	after := f.Get("starting_after")
	var data []*Item
	started := after == ""
	for i := len(s.items) - 1; i >= 0; i-- {
		it := s.items[i]
		if c := f.Get("customer"); c != "" && it.Customer != c {
			continue
		}
		if !started {
			started = it.ID == after
			continue
		}
		data = append(data, it)
	}
	more := len(data) > limit
	if more {
		data = data[:limit]
	}
	if data == nil {
		data = []*Item{}
	}
	b, _ := json.Marshal(map[string]any{"object": "list", "url": "/v1/invoiceitems", "has_more": more, "data": data})
	return http.StatusOK, b
}
