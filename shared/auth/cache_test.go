package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/usage"
)

// countingStore is an in-memory key store that counts lookups.
type countingStore struct {
	keys    map[string]*usage.APIKey
	lookups int
}

func (s *countingStore) CreateAPIKey(ctx context.Context, k *usage.APIKey) error {
	s.keys[string(k.Hash)] = k
	return nil
}

func (s *countingStore) APIKeyByHash(ctx context.Context, hash []byte) (*usage.APIKey, error) {
	s.lookups++
	k, ok := s.keys[string(hash)]
	if !ok || k.RevokedAt != nil {
		return nil, usage.Errorf(usage.CodeNotFound, "api key not found")
	}
	return k, nil
}

func (s *countingStore) RevokeAPIKey(ctx context.Context, userID, keyID string) error {
	for _, k := range s.keys {
		if k.ID == keyID && k.UserID == userID {
			t := time.Now()
			k.RevokedAt = &t
			return nil
		}
	}
	return usage.Errorf(usage.CodeNotFound, "api key not found")
}

func TestKeyCache(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{keys: map[string]*usage.APIKey{}}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cache := auth.NewKeyCache(store, time.Minute, func() time.Time { return now })
	secret, k, _ := auth.NewAPIKey(user, "ci")
	other, k2, _ := auth.NewAPIKey(user, "other")
	for _, key := range []*usage.APIKey{k, k2} {
		if err := cache.CreateAPIKey(ctx, key); err != nil {
			t.Fatal(err)
		}
	}

	for i := 0; i < 3; i++ {
		if id, err := auth.LookupAPIKey(ctx, cache, secret); err != nil || id.APIKeyID != k.ID {
			t.Fatalf("lookup %d: %+v, %v", i, id, err)
		}
	}
	if store.lookups != 1 {
		t.Errorf("3 lookups of one key reached the store %d times; want 1", store.lookups)
	}
	if _, err := auth.LookupAPIKey(ctx, cache, "nx_unknownunknownunknown"); usage.ErrorCode(err) != usage.CodeUnauthorized {
		t.Errorf("unknown key: %v", err)
	}

	// Revoked elsewhere: still served until the TTL ends, then refused.
	if _, err := auth.LookupAPIKey(ctx, cache, other); err != nil {
		t.Fatalf("first lookup of the second key: %v", err)
	}
	if err := store.RevokeAPIKey(ctx, user, k2.ID); err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Second)
	if _, err := auth.LookupAPIKey(ctx, cache, other); err != nil {
		t.Errorf("within the TTL: %v; want the cached key", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := auth.LookupAPIKey(ctx, cache, other); usage.ErrorCode(err) != usage.CodeUnauthorized {
		t.Errorf("after the TTL a key revoked elsewhere: %v; want %s", err, usage.CodeUnauthorized)
	}

	// Revoked through the cache: refused at once.
	if err := cache.RevokeAPIKey(ctx, user, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LookupAPIKey(ctx, cache, secret); usage.ErrorCode(err) != usage.CodeUnauthorized {
		t.Errorf("revoked through the cache: %v; want %s", err, usage.CodeUnauthorized)
	}
}
