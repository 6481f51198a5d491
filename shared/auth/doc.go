// Package auth authenticates callers: API keys, generated with a visible
// prefix and stored only as SHA-256 hashes, and JWT bearer tokens verified
// against an explicit algorithm allow-list, issuer, audience and expiry.
//
// A typical use in a handler:
//
//	a := &auth.Authenticator{Keys: postgres.NewAPIKeyStore(db), JWT: verifier}
//	id, err := a.Authenticate(ctx, func(name string) string { return req.Headers[strings.ToLower(name)] })
//	if err != nil {
//		return httpapi.Error(err) // 401 problem+json
//	}
//	// id.UserID is the caller; id.Admin marks operators.
package auth
