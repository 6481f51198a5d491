package postgres

import (
	"context"
	"fmt"

	"github.com/nexus/usage/shared/usage"
)

// APIKeyStore keeps API keys as SHA-256 hashes.
type APIKeyStore struct{ db *DB }

// NewAPIKeyStore returns a store over db.
func NewAPIKeyStore(db *DB) *APIKeyStore { return &APIKeyStore{db: db} }

var _ usage.APIKeyStore = (*APIKeyStore)(nil)

// CreateAPIKey stores k.
func (s *APIKeyStore) CreateAPIKey(ctx context.Context, k *usage.APIKey) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.db.now()
	}
	_, err := s.db.with(adminWork).Exec(ctx, `INSERT INTO eco_api_keys (api_key_id, user_id, name, prefix, key_hash, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, k.ID, k.UserID, k.Name, k.Prefix, k.Hash, k.CreatedAt)
	if err != nil {
		return FormatError(fmt.Errorf("create api key %s: %w", k.Prefix, err))
	}
	return nil
}

// APIKeyByHash returns the active key with the hash, in one query.
func (s *APIKeyStore) APIKeyByHash(ctx context.Context, hash []byte) (*usage.APIKey, error) {
	var k usage.APIKey
	err := s.db.with(limiterWork).QueryRow(ctx, `SELECT api_key_id, user_id, name, prefix, key_hash, created_at, revoked_at
		FROM eco_api_keys WHERE key_hash = $1 AND revoked_at IS NULL`, hash).
		Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &k.Hash, &k.CreatedAt, &k.RevokedAt)
	if err != nil {
		return nil, FormatError(fmt.Errorf("look up api key: %w", err))
	}
	return &k, nil
}

// RevokeAPIKey revokes the user's active key.
func (s *APIKeyStore) RevokeAPIKey(ctx context.Context, userID, keyID string) error {
	if !usage.IsUUID(userID) || !usage.IsUUID(keyID) {
		return usage.Errorf(usage.CodeNotFound, "api key not found")
	}
	tag, err := s.db.with(adminWork).Exec(ctx, `UPDATE eco_api_keys SET revoked_at = $3
		WHERE user_id = $1 AND api_key_id = $2 AND revoked_at IS NULL`, userID, keyID, s.db.now())
	if err != nil {
		return FormatError(fmt.Errorf("revoke api key %s: %w", keyID, err))
	}
	if tag.RowsAffected() == 0 {
		return usage.Errorf(usage.CodeNotFound, "api key not found")
	}
	return nil
}
