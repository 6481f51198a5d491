package dashboard_test

import (
	"fmt"
	"net/http"

	"github.com/nexus/usage/shared/dashboard"
	"github.com/nexus/usage/shared/httpapi"
)

func ExampleAsset() {
	_, contentType, ok := dashboard.Asset("app.js")
	fmt.Println(contentType, ok)
	_, contentType, _ = dashboard.Asset("")
	fmt.Println(contentType)
	_, _, ok = dashboard.Asset("../go.mod")
	fmt.Println(ok)
	// Output:
	// text/javascript; charset=utf-8 true
	// text/html; charset=utf-8
	// false
}

// Example_route serves an asset as a route does: its content type and the
// page's content security policy, revalidated rather than cached for long
// (the names carry no content hash), and a 404 problem for a name that is
// not one of the three files.
func Example_route() {
	serve := func(name string) httpapi.Response {
		body, contentType, ok := dashboard.Asset(name)
		if !ok {
			return httpapi.NewProblem(http.StatusNotFound, "not_found", "no such asset")
		}
		return httpapi.Response{StatusCode: http.StatusOK, Body: string(body), Headers: map[string]string{
			"Content-Type":            contentType,
			"Content-Security-Policy": dashboard.ContentSecurityPolicy,
			"Cache-Control":           "no-cache",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		}}
	}
	for _, name := range []string{"app.css", "secrets.txt"} {
		resp := serve(name)
		fmt.Println(name, resp.StatusCode, resp.Headers["Content-Type"], resp.Headers["Cache-Control"])
	}
	// Output:
	// app.css 200 text/css; charset=utf-8 no-cache
	// secrets.txt 404 application/problem+json
}
