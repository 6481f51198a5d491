package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/samtemplate"
)

// Invoker invokes a Lambda function with a JSON payload.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// maxPayload is the largest request body passed on: Lambda's payload limit
// (API Gateway's own is larger).
const maxPayload = 6 << 20

// Gateway is a local API Gateway HTTP API: it turns HTTP requests into
// payload-format-2.0 events (events.APIGatewayV2HTTPRequest), invokes the
// function and writes its APIGatewayV2HTTPResponse back.
//
// Routes come from template.yaml. With none, every request goes to the
// function as route "$default". A route behind the JWT authorizer answers
// 401 without invoking the function unless the bearer token verifies, and
// passes the token's claims in requestContext.authorizer.jwt; a route with
// Authorizer: NONE gets no authorizer context, as in AWS. Under "$default"
// a valid bearer token's claims are passed, and nothing is enforced.
type Gateway struct {
	Routes []samtemplate.Route
	// Function is the integration; nil answers 503 (the function is not
	// running, e.g. its build failed).
	Function Invoker
	// Verifier checks bearer tokens like the JWT authorizer.
	Verifier *auth.JWTVerifier
	Logger   *slog.Logger
	Now      func() time.Time
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	reqID := requestID()
	w.Header().Set("Apigw-Requestid", reqID)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if len(body) > maxPayload {
		writeError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	route, params, ok := g.match(r.Method, r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	ev := g.event(r, body, reqID, route.Key(), params)
	if route.Method == "" { // $default
		ev.RouteKey, ev.RequestContext.RouteKey = "$default", "$default"
	}
	if route.JWT || route.Method == "" {
		claims, scopes, err := g.authorize(r.Header.Get("Authorization"))
		switch {
		case err == nil:
			ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims, Scopes: scopes},
			}
		case route.JWT:
			w.Header().Set("Www-Authenticate", `Bearer`)
			writeError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
	}
	if g.Function == nil {
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable: the function is not running (see the devstack log)")
		return
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	start := time.Now()
	out, err := g.Function.Invoke(ctx, payload)
	if err != nil {
		g.logger().ErrorContext(ctx, "gateway: invocation failed", "request_id", reqID, "route", ev.RouteKey, "error", err)
		writeError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	status := writeResponse(w, out)
	g.logger().InfoContext(ctx, "gateway", "method", r.Method, "path", r.URL.Path, "route", ev.RouteKey,
		"status", status, "ms", time.Since(start).Milliseconds())
}

func (g *Gateway) logger() *slog.Logger {
	if g.Logger == nil {
		return slog.Default()
	}
	return g.Logger
}

// match picks the route as API Gateway does: the most specific path
// (literal segments before parameters before a greedy {proxy+}), and a
// method over ANY.
func (g *Gateway) match(method, path string) (samtemplate.Route, map[string]string, bool) {
	if len(g.Routes) == 0 {
		return samtemplate.Route{}, nil, true
	}
	type cand struct {
		r      samtemplate.Route
		params map[string]string
		score  int
	}
	var best *cand
	for _, r := range g.Routes {
		if r.Method != method && r.Method != "ANY" {
			continue
		}
		params, score, ok := matchPath(r.Path, path)
		if !ok {
			continue
		}
		score *= 2
		if r.Method != "ANY" {
			score++
		}
		if best == nil || score > best.score {
			best = &cand{r, params, score}
		}
	}
	if best == nil {
		return samtemplate.Route{}, nil, false
	}
	return best.r, best.params, true
}

// matchPath matches a path against a template; the score counts literal
// segments highest, parameters next, a greedy parameter lowest.
func matchPath(tmpl, path string) (map[string]string, int, bool) {
	ts := strings.Split(strings.Trim(tmpl, "/"), "/")
	ps := strings.Split(strings.Trim(path, "/"), "/")
	params := map[string]string{}
	score := 0
	for i, t := range ts {
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "+}") {
			if i >= len(ps) || ps[i] == "" {
				return nil, 0, false
			}
			params[t[1:len(t)-2]] = strings.Join(ps[i:], "/")
			return params, score, true
		}
		if i >= len(ps) {
			return nil, 0, false
		}
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
			if ps[i] == "" {
				return nil, 0, false
			}
			params[t[1:len(t)-1]] = ps[i]
			score += 1
			continue
		}
		if t != ps[i] {
			return nil, 0, false
		}
		score += 100
	}
	if len(ps) != len(ts) {
		return nil, 0, false
	}
	if len(params) == 0 {
		params = nil
	}
	return params, score, true
}

// writeError answers as API Gateway itself does: {"message": "..."}.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"message\":%q}\n", msg)
}

func requestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b) + "="
}
