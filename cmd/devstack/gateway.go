package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/cmd/internal/samtemplate"
	"github.com/nexus/usage/shared/auth"
)

// Invoker invokes a Lambda function with a JSON payload.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// maxPayload is API Gateway's request and Lambda's payload limit.
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
		gatewayError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if len(body) > maxPayload {
		gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	route, params, ok := g.match(r.Method, r.URL.Path)
	if !ok {
		gatewayError(w, http.StatusNotFound, "Not Found")
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
			gatewayError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
	}
	if g.Function == nil {
		gatewayError(w, http.StatusServiceUnavailable, "Service Unavailable: the function is not running (see the devstack log)")
		return
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	start := time.Now()
	out, err := g.Function.Invoke(ctx, payload)
	if err != nil {
		g.logger().ErrorContext(ctx, "gateway: invocation failed", "request_id", reqID, "route", ev.RouteKey, "error", err)
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
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

// authorize verifies a bearer token as the JWT authorizer does and returns
// its claims as API Gateway passes them (every value a string).
func (g *Gateway) authorize(header string) (map[string]string, []string, error) {
	if g.Verifier == nil {
		return nil, nil, errors.New("no verifier")
	}
	token := strings.TrimSpace(header)
	if scheme, rest, ok := strings.Cut(token, " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(rest)
	}
	if token == "" {
		return nil, nil, errors.New("no token")
	}
	if _, err := g.Verifier.Verify(token); err != nil {
		return nil, nil, err
	}
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, nil, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, nil, err
	}
	claims := make(map[string]string, len(m))
	for k, v := range m {
		claims[k] = claimString(v)
	}
	var scopes []string
	if s, ok := m["scope"].(string); ok {
		scopes = strings.Fields(s)
	}
	return claims, scopes, nil
}

// claimString renders a claim the way API Gateway's JWT authorizer does:
// strings as they are, numbers in decimal, arrays as "[a b]".
func claimString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case []any:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = claimString(e)
		}
		return "[" + strings.Join(s, " ") + "]"
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// event builds the payload-format-2.0 event of r.
func (g *Gateway) event(r *http.Request, body []byte, reqID, routeKey string, params map[string]string) events.APIGatewayV2HTTPRequest {
	now := time.Now()
	if g.Now != nil {
		now = g.Now()
	}
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		headers["host"] = r.Host
	}
	if len(body) > 0 || r.ContentLength >= 0 {
		headers["content-length"] = strconv.Itoa(len(body))
	}
	headers["x-forwarded-proto"] = "http"
	ip, port, _ := net.SplitHostPort(r.RemoteAddr)
	headers["x-forwarded-for"] = ip
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		headers["x-forwarded-port"] = p
	} else {
		headers["x-forwarded-port"] = port
	}
	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = map[string]string{}
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			query[k] = strings.Join(q[k], ",")
		}
	}
	encoded := len(body) > 0 && !isText(headers["content-type"], body)
	bodyStr := string(body)
	if encoded {
		bodyStr = base64.StdEncoding.EncodeToString(body)
	}
	domain, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		domain = r.Host
	}
	prefix, _, _ := strings.Cut(domain, ".")
	return events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              routeKey,
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     routeKey,
			AccountID:    "123456789012",
			Stage:        "$default",
			RequestID:    reqID,
			APIID:        "local",
			DomainName:   domain,
			DomainPrefix: prefix,
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  ip,
				UserAgent: r.UserAgent(),
			},
		},
		Body:            bodyStr,
		IsBase64Encoded: encoded,
	}
}

// isText reports whether a body goes to the function as text: a textual
// media type, or none and valid UTF-8.
func isText(contentType string, body []byte) bool {
	if contentType == "" {
		return utf8.Valid(body)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return utf8.Valid(body)
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "json"), strings.HasSuffix(mt, "+json"),
		strings.HasSuffix(mt, "xml"), strings.HasSuffix(mt, "javascript"),
		mt == "application/x-www-form-urlencoded", mt == "application/graphql":
		return true
	}
	return false
}

// writeResponse writes a function's payload-format-2.0 response. As API
// Gateway does, a payload that is JSON without a statusCode is sent as a
// 200 application/json body. It returns the status written.
func writeResponse(w http.ResponseWriter, out []byte) int {
	var probe map[string]json.RawMessage
	var resp events.APIGatewayV2HTTPResponse
	if json.Unmarshal(out, &probe) != nil || probe["statusCode"] == nil || json.Unmarshal(out, &resp) != nil {
		if !json.Valid(out) {
			gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
			return http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
		return http.StatusOK
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
			return http.StatusInternalServerError
		}
		body = b
	}
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	if h.Get("Content-Type") == "" && len(body) > 0 {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}

// gatewayError answers as API Gateway itself does: {"message": "..."}.
func gatewayError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"message\":%q}\n", msg)
}

func requestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b) + "="
}
