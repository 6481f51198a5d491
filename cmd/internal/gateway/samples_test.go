package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/auth"
)

// TestSampleTokens checks that the bearer tokens and claims of the samples
// in events/analytics are what the local stack's JWT authorizer accepts and
// passes, and that only the dashboard's files are asked for without them.
func TestSampleTokens(t *testing.T) {
	v, err := auth.NewJWTVerifier(seed.JWTConfig())
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{Verifier: v}
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "events", "analytics", "*.json"))
	if len(files) == 0 {
		t.Fatal("no samples in events/analytics")
	}
	for _, f := range files {
		var ev events.APIGatewayV2HTTPRequest
		b, _ := os.ReadFile(f)
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if ev.Version != "2.0" || ev.RouteKey == "" || ev.RequestContext.HTTP.Method == "" {
			t.Errorf("%s: not a payload-format-2.0 event with a route key", f)
		}
		authz := ev.Headers["authorization"]
		if ev.RouteKey == "GET /dashboard" || ev.RouteKey == "GET /dashboard/{asset}" {
			// The dashboard's files take no credentials, and a browser sends none.
			if authz != "" || ev.Headers["x-api-key"] != "" || ev.RequestContext.Authorizer != nil {
				t.Errorf("%s: credentials on a route that takes none", f)
			}
			continue
		}
		if authz == "" {
			if ev.Headers["x-api-key"] != seed.SampleAPIKey {
				t.Errorf("%s: neither a bearer token nor the sample API key", f)
			}
			continue
		}
		claims, _, err := g.authorize(authz)
		if err != nil {
			t.Errorf("%s: token does not verify: %v", f, err)
			continue
		}
		if ev.RequestContext.Authorizer == nil || ev.RequestContext.Authorizer.JWT == nil {
			t.Errorf("%s: no requestContext.authorizer.jwt", f)
			continue
		}
		for k, want := range claims {
			if got := ev.RequestContext.Authorizer.JWT.Claims[k]; got != want {
				t.Errorf("%s: claim %s = %q; the authorizer passes %q", f, k, got, want)
			}
		}
	}
}
