package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/usage"
)

// answer is what a caller sees of one edge's response: the status, the
// headers that carry a decision or an error, and the problem (nil for a
// response that is not one).
type answer struct {
	Status  int
	Headers map[string]string
	Problem *httpapi.Problem
}

// edgeHeaders are the headers every edge must agree on.
var edgeHeaders = []string{"Content-Type", "WWW-Authenticate", "Retry-After",
	"RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}

func answerOf(t *testing.T, status int, header func(string) string, body string) answer {
	t.Helper()
	a := answer{Status: status, Headers: map[string]string{}}
	for _, k := range edgeHeaders {
		if v := header(k); v != "" {
			a.Headers[k] = v
		}
	}
	if a.Headers["Content-Type"] == httpapi.ContentProblem {
		a.Problem = new(httpapi.Problem)
		if err := decodeInto(body, a.Problem); err != nil {
			t.Fatalf("problem body %q: %v", body, err)
		}
	}
	return a
}

// edge runs one request with an authenticator and a limit checker and
// returns the answer.
type edge func(t *testing.T, a usage.Authenticator, l usage.LimitChecker) answer

var served = []byte(`{"ok":true}`)

var edges = map[string]edge{
	"middleware net/http": func(t *testing.T, a usage.Authenticator, l usage.LimitChecker) answer {
		m := meter.New(a, l, nopPublisher(), meter.Options{Now: func() time.Time { return testNow }})
		h := m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(served)
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/games/42", nil))
		return answerOf(t, rec.Code, rec.Header().Get, rec.Body.String())
	},
	"middleware lambda": func(t *testing.T, a usage.Authenticator, l usage.LimitChecker) answer {
		m := meter.New(a, l, nopPublisher(), meter.Options{Now: func() time.Time { return testNow }})
		h := m.Lambda(func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			return events.APIGatewayV2HTTPResponse{StatusCode: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: string(served)}, nil
		})
		req := request("GET", "/v1/games/42", nil, "")
		req.RouteKey = "GET /v1/games/{id}"
		resp, err := h(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return answerOf(t, resp.StatusCode, func(k string) string { return resp.Headers[k] }, resp.Body)
	},
	"POST /v1/limits/check": func(t *testing.T, a usage.Authenticator, l usage.LimitChecker) answer {
		h := &Handler{Auth: a, Limits: l, Now: func() time.Time { return testNow }}
		resp := serve(t, h, request("POST", "/v1/limits/check", nil, ""))
		return answerOf(t, resp.StatusCode, func(k string) string { return resp.Headers[k] }, resp.Body)
	},
}

// TestEdgesAgree runs the middleware in both flavours and POST
// /v1/limits/check on the same decisions and the same failures: every
// rate limit answer carries the same headers, and every error is the same
// problem with the same headers, whichever edge answers.
func TestEdgesAgree(t *testing.T) {
	caller := &mock.Authenticator{AuthenticateFn: func(context.Context, func(string) string) (usage.Identity, error) {
		return usage.Identity{UserID: alice, APIKeyID: "4b1d0000-0000-4000-8000-0000000000a1"}, nil
	}}
	nobody := &mock.Authenticator{AuthenticateFn: func(context.Context, func(string) string) (usage.Identity, error) {
		return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "invalid api key")
	}}
	decide := func(d usage.Decision, err error) *mock.LimitChecker {
		fn := func(context.Context, usage.Identity, int64) (usage.Decision, error) { return d, err }
		return &mock.LimitChecker{CheckFn: fn, CheckRateFn: fn}
	}
	cause := errors.New("dial tcp 10.0.0.7:5432: connection refused")
	tests := []struct {
		name  string
		auth  usage.Authenticator
		check *mock.LimitChecker
		// refused is the problem type of the middleware's 429, "" when the
		// call goes through.
		refused string
		// problem is the error every edge answers, nil for a decision.
		problem *httpapi.Problem
	}{
		{name: "allowed", auth: caller, check: decide(allowedDecision, nil)},
		{name: "rate limited", auth: caller, check: decide(rateLimitedDecision, nil), refused: "urn:nexus:problem:rate_limited"},
		{name: "quota exceeded", auth: caller, check: decide(quotaExceededDecision, nil), refused: "urn:nexus:problem:quota_exceeded"},
		{name: "unauthorized", auth: nobody, check: decide(allowedDecision, nil), problem: &httpapi.Problem{
			Type: "urn:nexus:problem:unauthorized", Title: "Unauthorized", Status: 401, Detail: "invalid api key"}},
		{name: "unavailable", auth: caller, check: decide(usage.Decision{}, fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "limits unavailable"), cause)),
			problem: &httpapi.Problem{Type: "urn:nexus:problem:unavailable", Title: "Service Unavailable", Status: 503, Detail: "limits unavailable"}},
		{name: "internal", auth: caller, check: decide(usage.Decision{}, cause), problem: &httpapi.Problem{
			Type: "urn:nexus:problem:internal", Title: "Internal Server Error", Status: 500, Detail: "internal error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]answer{}
			for name, run := range edges {
				got[name] = run(t, tt.auth, tt.check)
			}
			check, net, lambda := got["POST /v1/limits/check"], got["middleware net/http"], got["middleware lambda"]
			if diff := cmp.Diff(net, lambda); diff != "" {
				t.Errorf("the middleware's flavours differ (-net/http +lambda):\n%s", diff)
			}
			if tt.problem != nil {
				want := answer{Status: tt.problem.Status, Headers: httpapi.ProblemResponse(*tt.problem).Headers, Problem: tt.problem}
				for name, a := range got {
					if diff := cmp.Diff(want, a); diff != "" {
						t.Errorf("%s (-want +got):\n%s", name, diff)
					}
				}
				return
			}
			// A decision: the same rate limit headers everywhere; the
			// middleware refuses with a problem, the check answers 200.
			d, _ := tt.check.Check(context.Background(), usage.Identity{}, 1)
			limits := httpapi.RateLimitHeaders(d, testNow)
			for name, a := range got {
				h := map[string]string{}
				for k, v := range a.Headers {
					if k != "Content-Type" {
						h[k] = v
					}
				}
				if diff := cmp.Diff(limits, h); diff != "" {
					t.Errorf("%s: rate limit headers (-want +got):\n%s", name, diff)
				}
			}
			if check.Status != 200 || check.Problem != nil {
				t.Errorf("limits check answered %d %+v; want 200 with the decision", check.Status, check.Problem)
			}
			switch {
			case tt.refused == "" && (net.Status != 200 || net.Problem != nil):
				t.Errorf("the middleware answered %d %+v; want the handler's 200", net.Status, net.Problem)
			case tt.refused != "" && (net.Status != 429 || net.Problem == nil || net.Problem.Type != tt.refused || net.Problem.Status != 429):
				t.Errorf("the middleware answered %d %+v; want a 429 %s", net.Status, net.Problem, tt.refused)
			}
		})
	}
}

func nopPublisher() *mock.Publisher {
	return &mock.Publisher{
		PublishFn: func(context.Context, usage.Event) error { return nil },
		FlushFn:   func(context.Context) error { return nil },
		SendFn:    func(_ context.Context, events []usage.Event) []error { return make([]error, len(events)) },
	}
}
