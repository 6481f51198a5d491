package auth_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/usage"
)

// Example authenticates a request in a handler. The key store here is an
// in-memory one holding one key; a function passes the PostgreSQL store
// (postgres.NewAPIKeyStore, behind auth.NewKeyCache) and its JWT verifier.
func Example() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	secret, key, err := auth.NewAPIKey("0b0e6f4e-3d0a-4b8c-9d51-6f1f3c1e2a10", "ci")
	if err != nil {
		fmt.Println(err)
		return
	}
	keys := &mock.APIKeyStore{APIKeyByHashFn: func(ctx context.Context, hash []byte) (*usage.APIKey, error) {
		if string(hash) == string(key.Hash) {
			return key, nil
		}
		return nil, usage.Errorf(usage.CodeNotFound, "no such key")
	}}
	a := &auth.Authenticator{Keys: keys}

	handle := func(req events.APIGatewayV2HTTPRequest) httpapi.Response {
		id, err := a.Authenticate(ctx, func(name string) string { return req.Headers[strings.ToLower(name)] })
		if err != nil {
			return httpapi.Error(ctx, logger, err) // 401 problem+json
		}
		// id.UserID is the caller; id.Admin marks operators.
		return httpapi.JSON(200, map[string]any{"user_id": id.UserID, "admin": id.Admin})
	}
	for _, k := range []string{secret, "nx_not_a_key"} {
		resp := handle(events.APIGatewayV2HTTPRequest{Headers: map[string]string{"x-api-key": k}})
		fmt.Println(resp.StatusCode, resp.Body)
	}
	// Output:
	// 200 {"admin":false,"user_id":"0b0e6f4e-3d0a-4b8c-9d51-6f1f3c1e2a10"}
	// 401 {"type":"urn:nexus:problem:unauthorized","title":"Unauthorized","status":401,"detail":"invalid api key"}
}
