package usage

import (
	"context"
	"time"
)

// Identity is the authenticated caller of a request.
type Identity struct {
	UserID string
	// APIKeyID is set when the caller used an API key.
	APIKeyID string
	// Admin marks operators allowed on the admin routes.
	Admin bool
}

// Authenticator resolves the credentials of a request to its caller.
type Authenticator interface {
	// Authenticate returns the caller of a request whose headers header
	// returns by case-insensitive name ("" when absent). Missing
	// credentials, and credentials that do not verify, are
	// CodeUnauthorized; a failure to reach the key store keeps its code
	// (CodeUnavailable).
	Authenticate(ctx context.Context, header func(name string) string) (Identity, error)
}

// APIKey is a stored API key. Only the SHA-256 hash of the secret is kept;
// Prefix is the visible part shown in lists ("nx_live_AbCdEf12").
type APIKey struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Hash      []byte     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// APIKeyStore keeps API keys.
type APIKeyStore interface {
	// CreateAPIKey stores k; its ID, UserID, Prefix and Hash must be set.
	// Returns CodeConflict if a key with the same hash or ID exists.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// APIKeyByHash returns the active (not revoked) key with the hash.
	// Returns CodeNotFound if there is none.
	APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	// RevokeAPIKey revokes the user's key. Returns CodeNotFound if the user
	// has no such active key.
	RevokeAPIKey(ctx context.Context, userID, keyID string) error
}
