// Package auth authenticates callers: API keys, generated with a visible
// prefix and stored only as SHA-256 hashes, and JWT bearer tokens verified
// against an explicit algorithm allow-list, issuer, audience and expiry.
//
// Example authenticates a request in a handler.
package auth
