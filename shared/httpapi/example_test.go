package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/httpapi"
)

// Example routes API Gateway events by method and pattern: a handler reads
// its path and query parameters, a bad parameter is a 400 problem+json
// naming it, and a path no route matches is a 404.
func Example() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	r := httpapi.NewRouter()
	r.Handle("GET /v1/users/{id}", func(ctx context.Context, req *httpapi.Request) httpapi.Response {
		from, err := httpapi.ParseDate("from", req.Query("from"))
		if err != nil {
			return httpapi.Error(ctx, logger, err) // 400, naming "from"
		}
		return httpapi.JSON(200, map[string]any{"id": req.Param("id"), "from": from.Format("2006-01-02")})
	})
	for _, q := range []string{"from=2026-03-01", "from=March"} {
		resp := r.Serve(ctx, &events.APIGatewayV2HTTPRequest{RawPath: "/v1/users/42", RawQueryString: q,
			RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/v1/users/42"}}})
		fmt.Println(resp.StatusCode, resp.Headers["Content-Type"], resp.Body)
	}
	resp := r.Serve(ctx, &events.APIGatewayV2HTTPRequest{RawPath: "/v1/nothing",
		RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/v1/nothing"}}})
	fmt.Println(resp.StatusCode, resp.Headers["Content-Type"]) // 404 or 405 problem+json when nothing matches
	// Output:
	// 200 application/json {"from":"2026-03-01","id":"42"}
	// 400 application/problem+json {"type":"urn:nexus:problem:invalid","title":"Bad Request","status":400,"detail":"from: must be a date YYYY-MM-DD","param":"from","invalid-params":[{"name":"from","reason":"from: must be a date YYYY-MM-DD"}]}
	// 404 application/problem+json
}
