package httpapi

import (
	"context"
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Request is an API Gateway HTTP API (payload v2) request with the path
// parameters of the route it matched.
type Request struct {
	Event  *events.APIGatewayV2HTTPRequest
	Route  string
	Params map[string]string
	query  url.Values
}

// Param returns a path parameter of the matched route.
func (r *Request) Param(name string) string { return r.Params[name] }

// Query returns the first value of a query string parameter.
func (r *Request) Query(name string) string {
	if r.query == nil {
		r.query = parseQuery(r.Event)
	}
	return r.query.Get(name)
}

// Header returns a request header by case-insensitive name.
func (r *Request) Header(name string) string {
	if v, ok := r.Event.Headers[strings.ToLower(name)]; ok {
		return v
	}
	for k, v := range r.Event.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// Body returns the request body, decoding base64 when API Gateway encoded it.
func (r *Request) Body() ([]byte, error) {
	if r.Event.IsBase64Encoded {
		return base64.StdEncoding.DecodeString(r.Event.Body)
	}
	return []byte(r.Event.Body), nil
}

// Accepts reports whether the Accept header lists the media type (exactly,
// not through wildcards).
func (r *Request) Accepts(mediaType string) bool {
	for _, part := range strings.Split(r.Header("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && strings.EqualFold(mt, mediaType) {
			return true
		}
	}
	return false
}

func parseQuery(e *events.APIGatewayV2HTTPRequest) url.Values {
	if e.RawQueryString != "" {
		if q, err := url.ParseQuery(e.RawQueryString); err == nil {
			return q
		}
	}
	q := url.Values{}
	for k, v := range e.QueryStringParameters {
		// API Gateway joins repeated parameters with commas.
		q.Set(k, v)
	}
	return q
}

// HandlerFunc serves one route.
type HandlerFunc func(ctx context.Context, r *Request) Response

type route struct {
	method, pattern string
	segments        []string
	h               HandlerFunc
}

// Router dispatches requests on method and route pattern, such as
// "GET /v1/admin/users/{id}/usage".
type Router struct {
	routes []route
	byKey  map[string]*route
}

// NewRouter returns an empty router.
func NewRouter() *Router { return &Router{byKey: map[string]*route{}} }

// Handle registers h for routeKey, "METHOD /path" with {name} segments.
func (rt *Router) Handle(routeKey string, h HandlerFunc) {
	method, pattern, ok := strings.Cut(routeKey, " ")
	if !ok || !strings.HasPrefix(pattern, "/") {
		panic("httpapi: route key must be \"METHOD /path\": " + routeKey)
	}
	if _, dup := rt.byKey[routeKey]; dup {
		panic("httpapi: duplicate route " + routeKey)
	}
	rt.routes = append(rt.routes, route{method: method, pattern: pattern, segments: split(pattern), h: h})
	rt.byKey = map[string]*route{}
	for i := range rt.routes {
		rt.byKey[rt.routes[i].method+" "+rt.routes[i].pattern] = &rt.routes[i]
	}
}

// Routes returns the registered route keys, sorted.
func (rt *Router) Routes() []string {
	keys := make([]string, 0, len(rt.routes))
	for k := range rt.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func split(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

// Serve routes the event: by its RouteKey when API Gateway matched one of
// the registered routes (with its PathParameters), otherwise by method and
// raw path, as a $default route or a local server sends it. No route is a
// 404 and a known path with another method a 405, both problem+json.
func (rt *Router) Serve(ctx context.Context, e *events.APIGatewayV2HTTPRequest) Response {
	if r, ok := rt.byKey[e.RouteKey]; ok {
		params := map[string]string{}
		for k, v := range e.PathParameters {
			params[k] = v
		}
		return r.h(ctx, &Request{Event: e, Route: e.RouteKey, Params: params})
	}
	method := e.RequestContext.HTTP.Method
	path := e.RawPath
	if path == "" {
		path = e.RequestContext.HTTP.Path
	}
	segs := split(path)
	var allowed []string
	for i := range rt.routes {
		r := &rt.routes[i]
		params, ok := match(r.segments, segs)
		if !ok {
			continue
		}
		if !strings.EqualFold(r.method, method) {
			allowed = append(allowed, r.method)
			continue
		}
		return r.h(ctx, &Request{Event: e, Route: r.method + " " + r.pattern, Params: params})
	}
	if len(allowed) > 0 {
		resp := NewProblem(http.StatusMethodNotAllowed, "method_not_allowed", "method "+method+" is not allowed here")
		resp.Headers["Allow"] = strings.Join(allowed, ", ")
		return resp
	}
	return NewProblem(http.StatusNotFound, "not_found", "no such route")
}

// match matches path segments against a pattern's, binding {name}
// segments; the values are unescaped.
func match(pattern, path []string) (map[string]string, bool) {
	if len(pattern) != len(path) {
		return nil, false
	}
	var params map[string]string
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			v, err := url.PathUnescape(path[i])
			if err != nil || v == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = v
			continue
		}
		if p != path[i] {
			return nil, false
		}
	}
	if params == nil {
		params = map[string]string{}
	}
	return params, true
}
