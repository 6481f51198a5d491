package mock

import (
	"context"

	"github.com/nexus/usage/shared/usage"
)

var _ usage.Authenticator = (*Authenticator)(nil)

// Authenticator is a usage.Authenticator.
type Authenticator struct {
	AuthenticateFn func(ctx context.Context, header func(name string) string) (usage.Identity, error)
}

// Authenticate calls AuthenticateFn.
func (a *Authenticator) Authenticate(ctx context.Context, header func(name string) string) (usage.Identity, error) {
	return a.AuthenticateFn(ctx, header)
}

var _ usage.APIKeyStore = (*APIKeyStore)(nil)

// APIKeyStore is a usage.APIKeyStore.
type APIKeyStore struct {
	CreateAPIKeyFn func(ctx context.Context, k *usage.APIKey) error
	APIKeyByHashFn func(ctx context.Context, hash []byte) (*usage.APIKey, error)
	RevokeAPIKeyFn func(ctx context.Context, userID, keyID string) error
}

// CreateAPIKey calls CreateAPIKeyFn.
func (s *APIKeyStore) CreateAPIKey(ctx context.Context, k *usage.APIKey) error {
	return s.CreateAPIKeyFn(ctx, k)
}

// APIKeyByHash calls APIKeyByHashFn.
func (s *APIKeyStore) APIKeyByHash(ctx context.Context, hash []byte) (*usage.APIKey, error) {
	return s.APIKeyByHashFn(ctx, hash)
}

// RevokeAPIKey calls RevokeAPIKeyFn.
func (s *APIKeyStore) RevokeAPIKey(ctx context.Context, userID, keyID string) error {
	return s.RevokeAPIKeyFn(ctx, userID, keyID)
}
