package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

var (
	specOnce   sync.Once
	specRouter routers.Router
	specDoc    *openapi3.T
	specErr    error
)

// spec loads and validates api/openapi.yaml once.
func spec(tb testing.TB) (*openapi3.T, routers.Router) {
	tb.Helper()
	specOnce.Do(func() {
		// Text bodies are strings to the schemas (the dashboard's files
		// are checked byte for byte by dashboard_test.go).
		for _, mt := range []string{"text/csv", "text/html", "text/javascript", "text/css"} {
			openapi3filter.RegisterBodyDecoder(mt, func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
				b, err := io.ReadAll(r)
				return string(b), err
			})
		}
		loader := openapi3.NewLoader()
		specDoc, specErr = loader.LoadFromFile("../../api/openapi.yaml")
		if specErr != nil {
			return
		}
		if specErr = specDoc.Validate(context.Background()); specErr != nil {
			return
		}
		specRouter, specErr = legacy.NewRouter(specDoc)
	})
	if specErr != nil {
		tb.Fatalf("api/openapi.yaml: %v", specErr)
	}
	return specDoc, specRouter
}

// checkSpec validates a real response (and its request) against the
// OpenAPI document: the route and status must be declared and the body must
// match the schema of its media type.
func checkSpec(tb testing.TB, req events.APIGatewayV2HTTPRequest, resp events.APIGatewayV2HTTPResponse) {
	tb.Helper()
	_, router := spec(tb)
	u := &url.URL{Path: req.RawPath, RawQuery: req.RawQueryString}
	hreq, err := http.NewRequest(req.RequestContext.HTTP.Method, "http://localhost"+u.String(), strings.NewReader(req.Body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range req.Headers {
		hreq.Header.Set(k, v)
	}
	route, params, err := router.FindRoute(hreq)
	if err != nil {
		tb.Errorf("%s %s: not in api/openapi.yaml: %v", hreq.Method, u, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: hreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	h := http.Header{}
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: h,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes([]byte(resp.Body))
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		tb.Errorf("%s %s → %d %s\ndoes not match api/openapi.yaml: %v", hreq.Method, u, resp.StatusCode, resp.Body, err)
	}
	_ = bytes.MinRead
}

// TestSpecCoversRoutes checks that the document and the router declare the
// same routes.
func TestSpecCoversRoutes(t *testing.T) {
	doc, _ := spec(t)
	inSpec := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inSpec[method+" "+path] = true
		}
	}
	h := &Handler{}
	for _, r := range h.Routes() {
		if !inSpec[r] {
			t.Errorf("route %s is not in api/openapi.yaml", r)
		}
		delete(inSpec, r)
	}
	for r := range inSpec {
		t.Errorf("api/openapi.yaml declares %s, which the handler does not serve", r)
	}
}
