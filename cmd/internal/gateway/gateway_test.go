package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/samtemplate"
)

// recorder is a function that records its event and answers resp.
type recorder struct {
	got  events.APIGatewayV2HTTPRequest
	resp string
}

func (r *recorder) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	if err := json.Unmarshal(payload, &r.got); err != nil {
		return nil, err
	}
	return []byte(r.resp), nil
}

func testGateway(t *testing.T, fn Invoker) *Gateway {
	t.Helper()
	v, err := auth.NewJWTVerifier(seed.JWTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &Gateway{Function: fn, Verifier: v, Routes: []samtemplate.Route{
		{Method: "GET", Path: "/v1/usage"},
		{Method: "GET", Path: "/v1/admin/users/{id}/usage", JWT: true},
		{Method: "GET", Path: "/v1/admin/users/me/usage", JWT: true},
		{Method: "ANY", Path: "/files/{proxy+}"},
	}}
}

func TestGatewayEvent(t *testing.T) {
	fn := &recorder{resp: `{"statusCode":201,"headers":{"X-One":"1"},"multiValueHeaders":{"X-Many":["a","b"]},"cookies":["s=1; Path=/"],"body":"aGk=","isBase64Encoded":true}`}
	g := testGateway(t, fn)
	token, _ := auth.Sign([]byte(seed.JWTSecret), seed.JWTIssuer, seed.JWTAudience, seed.AdminUserID, true, time.Now(), time.Hour)
	req := httptest.NewRequest("GET", "http://localhost:8080/v1/admin/users/22222222-2222-4222-8222-222222222222/usage?from=2026-11-01&to=2026-11-02&x=1&x=2", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Add("Cookie", "a=1; b=2")
	req.Header.Set("X-Custom", "v")
	w := httptest.NewRecorder()
	g.ServeHTTP(w, req)

	ev := fn.got
	if ev.Version != "2.0" || ev.RouteKey != "GET /v1/admin/users/{id}/usage" || ev.RequestContext.RouteKey != ev.RouteKey {
		t.Errorf("version %q, routeKey %q", ev.Version, ev.RouteKey)
	}
	if ev.PathParameters["id"] != "22222222-2222-4222-8222-222222222222" {
		t.Errorf("pathParameters = %v", ev.PathParameters)
	}
	if ev.RawPath != "/v1/admin/users/22222222-2222-4222-8222-222222222222/usage" || ev.RawQueryString != "from=2026-11-01&to=2026-11-02&x=1&x=2" {
		t.Errorf("rawPath %q rawQueryString %q", ev.RawPath, ev.RawQueryString)
	}
	if ev.QueryStringParameters["x"] != "1,2" || ev.QueryStringParameters["from"] != "2026-11-01" {
		t.Errorf("queryStringParameters = %v", ev.QueryStringParameters)
	}
	if ev.Headers["x-custom"] != "v" || ev.Headers["cookie"] != "" || strings.Join(ev.Cookies, "|") != "a=1|b=2" {
		t.Errorf("headers %v cookies %v", ev.Headers, ev.Cookies)
	}
	if ev.RequestContext.HTTP.Method != "GET" || ev.RequestContext.HTTP.SourceIP == "" || ev.RequestContext.RequestID == "" {
		t.Errorf("requestContext.http = %+v, requestId %q", ev.RequestContext.HTTP, ev.RequestContext.RequestID)
	}
	a := ev.RequestContext.Authorizer
	if a == nil || a.JWT == nil || a.JWT.Claims["sub"] != seed.AdminUserID || a.JWT.Claims["role"] != "admin" || a.JWT.Claims["aud"] != "["+seed.JWTAudience+"]" {
		t.Errorf("authorizer = %+v", a)
	}
	res := w.Result()
	if res.StatusCode != 201 || w.Body.String() != "hi" || res.Header.Get("X-One") != "1" ||
		strings.Join(res.Header.Values("X-Many"), ",") != "a,b" || res.Header.Get("Set-Cookie") != "s=1; Path=/" {
		t.Errorf("response %d %q %v", res.StatusCode, w.Body.String(), res.Header)
	}
}

func TestGatewayRouting(t *testing.T) {
	tests := []struct {
		method, path, auth string
		status             int
		routeKey           string
	}{
		{"GET", "/v1/usage", "", 200, "GET /v1/usage"},
		{"POST", "/v1/usage", "", 404, ""},
		{"GET", "/v1/nothing", "", 404, ""},
		{"GET", "/v1/admin/users/x/usage", "", 401, ""},
		{"GET", "/v1/admin/users/x/usage", "Bearer not-a-token", 401, ""},
		{"GET", "/v1/admin/users/x/usage", "user", 200, "GET /v1/admin/users/{id}/usage"},
		// The literal segment wins over the parameter.
		{"GET", "/v1/admin/users/me/usage", "user", 200, "GET /v1/admin/users/me/usage"},
		{"DELETE", "/files/a/b/c", "", 200, "ANY /files/{proxy+}"},
		{"GET", "/files", "", 404, ""},
	}
	token, _ := auth.Sign([]byte(seed.JWTSecret), seed.JWTIssuer, seed.JWTAudience, seed.ProUserID, false, time.Now(), time.Hour)
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			fn := &recorder{resp: `{"ok":true}`}
			g := testGateway(t, fn)
			req := httptest.NewRequest(tt.method, tt.path, nil)
			switch tt.auth {
			case "user":
				req.Header.Set("Authorization", "Bearer "+token)
			case "":
			default:
				req.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			g.ServeHTTP(w, req)
			if w.Code != tt.status {
				t.Fatalf("status %d; want %d (%s)", w.Code, tt.status, w.Body)
			}
			if fn.got.RouteKey != tt.routeKey {
				t.Errorf("routeKey %q; want %q", fn.got.RouteKey, tt.routeKey)
			}
			if tt.status == 200 && (w.Body.String() != `{"ok":true}` || w.Header().Get("Content-Type") != "application/json") {
				t.Errorf("a JSON answer without statusCode must pass as a 200 JSON body; got %q %v", w.Body, w.Header())
			}
		})
	}
}

func TestGatewayBody(t *testing.T) {
	tests := []struct {
		contentType string
		body        string
		base64      bool
	}{
		{"application/json", `{"a":1}`, false},
		{"text/plain; charset=utf-8", "hello", false},
		{"", "hello", false},
		{"application/octet-stream", "\x00\x01", true},
		{"image/png", "png", true},
	}
	for _, tt := range tests {
		fn := &recorder{resp: `{"statusCode":204}`}
		g := &Gateway{Function: fn}
		req := httptest.NewRequest("POST", "/v1/events", strings.NewReader(tt.body))
		if tt.contentType != "" {
			req.Header.Set("Content-Type", tt.contentType)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if fn.got.RouteKey != "$default" || fn.got.IsBase64Encoded != tt.base64 || w.Code != http.StatusNoContent {
			t.Errorf("%q: routeKey %q, isBase64Encoded %v (want %v), status %d", tt.contentType, fn.got.RouteKey, fn.got.IsBase64Encoded, tt.base64, w.Code)
		}
	}
}

func TestGatewayFunctionError(t *testing.T) {
	g := &Gateway{Function: &failing{}}
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/v1/usage", nil))
	if w.Code != 500 || !strings.Contains(w.Body.String(), "Internal Server Error") || strings.Contains(w.Body.String(), "boom") {
		t.Errorf("a function error answered %d %q; want API Gateway's 500 without the error text", w.Code, w.Body)
	}
	g = &Gateway{}
	w = httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/v1/usage", nil))
	if w.Code != 503 {
		t.Errorf("no function answered %d; want 503", w.Code)
	}
}

type failing struct{}

func (failing) Invoke(context.Context, []byte) ([]byte, error) {
	return []byte(`{"errorMessage":"boom","errorType":"errorString"}`), &rie.FunctionError{Type: "errorString", Message: "boom"}
}
