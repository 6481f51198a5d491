package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/usage"
)

// KeyPrefix starts every API key, so that leaked keys are easy to find.
const KeyPrefix = "nx_"

// visibleLen is how much of a key is shown in lists: the prefix and the
// first characters of the secret.
const visibleLen = len(KeyPrefix) + 8

// NewAPIKey generates an API key for the user. It returns the key to hand
// to the user once, and the record to store, which holds only the SHA-256
// hash and the visible prefix.
func NewAPIKey(userID, name string) (secret string, k *usage.APIKey, err error) {
	if !usage.IsUUID(userID) {
		return "", nil, usage.FieldErrorf("user_id", "must be a UUID")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	secret = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, &usage.APIKey{
		ID:     uuid.NewString(),
		UserID: userID,
		Name:   name,
		Prefix: secret[:visibleLen],
		Hash:   HashAPIKey(secret),
	}, nil
}

// HashAPIKey returns the SHA-256 hash under which a key is stored. Keys are
// 256-bit random values, so a fast unsalted hash is enough: there is nothing
// to brute-force.
func HashAPIKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// LookupAPIKey resolves a presented key to the caller's identity in one
// query. Malformed, unknown and revoked keys all return CodeUnauthorized.
func LookupAPIKey(ctx context.Context, keys usage.APIKeyStore, secret string) (usage.Identity, error) {
	if !strings.HasPrefix(secret, KeyPrefix) || len(secret) < visibleLen || len(secret) > 128 {
		return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "invalid api key")
	}
	k, err := keys.APIKeyByHash(ctx, HashAPIKey(secret))
	if usage.ErrorCode(err) == usage.CodeNotFound {
		return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "invalid api key")
	} else if err != nil {
		return usage.Identity{}, err
	}
	return usage.Identity{UserID: k.UserID, APIKeyID: k.ID}, nil
}
