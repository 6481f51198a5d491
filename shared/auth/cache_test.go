package auth_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// TestKeyCacheRemembersUnknownKeys: a key the store does not know is
// refused from memory for the unknown-key TTL (a flood of one wrong key
// costs one lookup per TTL, not one per request), then looked up again; a
// store failure is not remembered; a key created through the cache is
// known at once.
func TestKeyCacheRemembersUnknownKeys(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{keys: map[string]*usage.APIKey{}}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cache := auth.NewKeyCache(store, time.Minute, func() time.Time { return now })
	secret, k, _ := auth.NewAPIKey(user, "later")
	for i := 0; i < 300; i++ {
		if _, err := auth.LookupAPIKey(ctx, cache, secret); usage.ErrorCode(err) != usage.CodeUnauthorized {
			t.Fatalf("lookup %d of an unknown key: %v; want %s", i, err, usage.CodeUnauthorized)
		}
	}
	if store.lookups != 1 {
		t.Errorf("300 lookups of one unknown key reached the store %d times; want 1", store.lookups)
	}
	now = now.Add(auth.DefaultUnknownKeyTTL)
	if _, err := auth.LookupAPIKey(ctx, cache, secret); usage.ErrorCode(err) != usage.CodeUnauthorized || store.lookups != 2 {
		t.Errorf("after the unknown-key TTL: %v, %d lookups; want %s after a second lookup", err, store.lookups, usage.CodeUnauthorized)
	}
	if err := cache.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if id, err := auth.LookupAPIKey(ctx, cache, secret); err != nil || id.APIKeyID != k.ID {
		t.Errorf("a key created through the cache, just after it was unknown: %+v, %v; want it found", id, err)
	}

	failing := &failingStore{}
	fc := auth.NewKeyCache(failing, time.Minute, func() time.Time { return now })
	for i := 0; i < 2; i++ {
		if _, err := auth.LookupAPIKey(ctx, fc, secret); usage.ErrorCode(err) != usage.CodeUnavailable {
			t.Fatalf("lookup with the store down: %v; want %s", err, usage.CodeUnavailable)
		}
	}
	if failing.lookups != 2 {
		t.Errorf("a store failure was remembered: %d lookups for 2 calls; want 2", failing.lookups)
	}
}

// TestKeyCacheUnknownKeysBounded: a flood of distinct unknown keys does
// not grow the cache without bound.
func TestKeyCacheUnknownKeysBounded(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{keys: map[string]*usage.APIKey{}}
	cache := auth.NewKeyCache(store, time.Minute, nil)
	for i := 0; i < 25_000; i++ {
		secret, _, _ := auth.NewAPIKey(user, "random")
		_, _ = auth.LookupAPIKey(ctx, cache, secret)
	}
	if _, unknown := cache.Len(); unknown == 0 || unknown > 10_000 {
		t.Errorf("the cache holds %d unknown keys after 25,000 distinct ones; want between 1 and 10,000", unknown)
	}
}

// TestKeyCacheSharesConcurrentLookups: 30 concurrent requests with the
// same key not cached yet cost one store call.
func TestKeyCacheSharesConcurrentLookups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &gateStore{release: make(chan struct{})}
		cache := auth.NewKeyCache(store, time.Minute, nil)
		secret, _, _ := auth.NewAPIKey(user, "x")
		errs := make(chan error, 30)
		for range 30 {
			go func() {
				_, err := auth.LookupAPIKey(ctx, cache, secret)
				errs <- err
			}()
		}
		synctest.Wait() // all 30 are blocked: one in the store, the others on it
		close(store.release)
		for range 30 {
			if err := <-errs; usage.ErrorCode(err) != usage.CodeUnauthorized {
				t.Errorf("concurrent lookup: %v; want %s", err, usage.CodeUnauthorized)
			}
		}
		if n := store.lookups.Load(); n != 1 {
			t.Errorf("30 concurrent lookups of one key reached the store %d times; want 1", n)
		}
	})
}

// failingStore cannot be reached.
type failingStore struct{ lookups int }

func (s *failingStore) CreateAPIKey(context.Context, *usage.APIKey) error { return nil }
func (s *failingStore) APIKeyByHash(context.Context, []byte) (*usage.APIKey, error) {
	s.lookups++
	return nil, usage.Errorf(usage.CodeUnavailable, "database unavailable")
}
func (s *failingStore) RevokeAPIKey(context.Context, string, string) error { return nil }

// gateStore knows no key and answers only once release is closed.
type gateStore struct {
	release chan struct{}
	lookups atomic.Int64
}

func (s *gateStore) CreateAPIKey(context.Context, *usage.APIKey) error { return nil }
func (s *gateStore) APIKeyByHash(context.Context, []byte) (*usage.APIKey, error) {
	s.lookups.Add(1)
	<-s.release
	return nil, usage.Errorf(usage.CodeNotFound, "api key not found")
}
func (s *gateStore) RevokeAPIKey(context.Context, string, string) error { return nil }

// TestKeyCacheSweepMakesRoom: when the unknown keys fill the cache and a
// sweep finds few of them expired, the sweep still makes room for many
// more, so that a steady flood of distinct random keys (whose oldest
// entries expire one by one) costs one sweep of the map per thousands of
// keys, not one per key under the cache's lock.
func TestKeyCacheSweepMakesRoom(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{keys: map[string]*usage.APIKey{}}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cache := auth.NewKeyCache(store, time.Minute, func() time.Time { return now })
	const full = 10_000
	for i := 0; i < full; i++ {
		if i == 1 {
			// The first key expires before the others.
			now = now.Add(time.Second)
		}
		secret, _, _ := auth.NewAPIKey(user, "random")
		_, _ = auth.LookupAPIKey(ctx, cache, secret)
	}
	if _, unknown := cache.Len(); unknown != full {
		t.Fatalf("the cache holds %d unknown keys; want %d", unknown, full)
	}
	now = now.Add(auth.DefaultUnknownKeyTTL - time.Second) // only the first has expired
	secret, _, _ := auth.NewAPIKey(user, "random")
	_, _ = auth.LookupAPIKey(ctx, cache, secret)
	if _, unknown := cache.Len(); unknown > full/2+1 {
		t.Errorf("after a sweep of a full cache that found one key expired, it holds %d unknown keys; want at most %d", unknown, full/2+1)
	}
}
