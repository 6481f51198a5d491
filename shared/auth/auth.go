package auth

import (
	"context"
	"strings"

	"github.com/nexus/usage/shared/usage"
)

// APIKeyHeader carries an API key.
const APIKeyHeader = "X-Api-Key"

// Authenticator resolves request credentials to an identity: an API key in
// the X-Api-Key header (or "Authorization: ApiKey <key>"), or a JWT in
// "Authorization: Bearer <token>".
type Authenticator struct {
	Keys usage.APIKeyStore
	JWT  *JWTVerifier
}

var _ usage.Authenticator = (*Authenticator)(nil)

// Authenticate returns the caller of a request whose headers h returns by
// case-insensitive name. No credentials, or credentials that do not
// verify, return CodeUnauthorized; a store failure keeps its code.
func (a *Authenticator) Authenticate(ctx context.Context, h func(name string) string) (usage.Identity, error) {
	if key := strings.TrimSpace(h(APIKeyHeader)); key != "" {
		return a.apiKey(ctx, key)
	}
	authz := strings.TrimSpace(h("Authorization"))
	if authz == "" {
		return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "missing credentials: send an API key or a bearer token")
	}
	scheme, cred, ok := strings.Cut(authz, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case ok && strings.EqualFold(scheme, "Bearer") && cred != "":
		if a.JWT == nil {
			return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "bearer tokens are not accepted here")
		}
		return a.JWT.Verify(cred)
	case ok && strings.EqualFold(scheme, "ApiKey") && cred != "":
		return a.apiKey(ctx, cred)
	}
	return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "malformed Authorization header")
}

func (a *Authenticator) apiKey(ctx context.Context, key string) (usage.Identity, error) {
	if a.Keys == nil {
		return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "api keys are not accepted here")
	}
	return LookupAPIKey(ctx, a.Keys, key)
}
