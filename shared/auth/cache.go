package auth

import (
	"context"
	"sync"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// DefaultKeyCacheTTL is how long a looked-up API key is reused. It is also
// the longest a revoked key keeps working on an instance that had it cached.
const DefaultKeyCacheTTL = 30 * time.Second

// DefaultUnknownKeyTTL is how long a key the store does not know is
// refused from memory before it is looked up again. Keys are 256-bit
// random values made by NewAPIKey, so no key is looked up before it
// exists; a key created through the cache is forgotten as unknown at once.
const DefaultUnknownKeyTTL = 10 * time.Second

// maxCachedKeys bounds the known keys and, separately, the unknown ones:
// when either map is full its expired entries are swept, and live ones
// dropped until at most half of it is left (put).
const maxCachedKeys = 10_000

// KeyCache is an APIKeyStore that remembers active keys for a TTL, so that
// a caller's requests after the first cost no key lookup: with a warm limit
// cache the metered request path is then one statement. It remembers keys
// the store does not know for a shorter TTL (DefaultUnknownKeyTTL), so
// that a client repeating a wrong or revoked key costs one lookup per TTL
// and instance, not one per request; concurrent lookups of one key share
// one store call. Both caches are bounded (maxCachedKeys each). A key
// revoked through this store is dropped at once; one revoked elsewhere
// stops working within the TTL.
//
// A flood of distinct random keys still costs a lookup each (one indexed
// read of a key hash); what bounds it is the API's throttling and the
// function's reserved concurrency (template.yaml), not this cache.
type KeyCache struct {
	store      usage.APIKeyStore
	ttl        time.Duration
	unknownTTL time.Duration
	now        func() time.Time

	mu       sync.Mutex
	keys     map[string]cachedKey // by hash
	unknown  map[string]time.Time // by hash: until when the key is refused from memory
	inflight map[string]*lookup   // by hash: the store call under way
}

type cachedKey struct {
	key     *usage.APIKey
	expires time.Time
}

// lookup is one store call that concurrent callers of the same hash wait
// for.
type lookup struct {
	done chan struct{}
	key  *usage.APIKey
	err  error
}

// NewKeyCache wraps store. ttl ≤ 0 means DefaultKeyCacheTTL; now nil means
// time.Now. Unknown keys are remembered for DefaultUnknownKeyTTL (at most
// ttl).
func NewKeyCache(store usage.APIKeyStore, ttl time.Duration, now func() time.Time) *KeyCache {
	if ttl <= 0 {
		ttl = DefaultKeyCacheTTL
	}
	if now == nil {
		now = time.Now
	}
	return &KeyCache{store: store, ttl: ttl, unknownTTL: min(DefaultUnknownKeyTTL, ttl), now: now,
		keys: map[string]cachedKey{}, unknown: map[string]time.Time{}, inflight: map[string]*lookup{}}
}

var _ usage.APIKeyStore = (*KeyCache)(nil)

// CreateAPIKey stores k and forgets its hash as unknown.
func (c *KeyCache) CreateAPIKey(ctx context.Context, k *usage.APIKey) error {
	err := c.store.CreateAPIKey(ctx, k)
	c.mu.Lock()
	delete(c.unknown, string(k.Hash))
	c.mu.Unlock()
	return err
}

// APIKeyByHash returns the key from the cache, or looks it up and caches
// it. A key the store did not know within the unknown-key TTL is
// CodeNotFound without a lookup.
func (c *KeyCache) APIKeyByHash(ctx context.Context, hash []byte) (*usage.APIKey, error) {
	h := string(hash)
	now := c.now()
	c.mu.Lock()
	if e, ok := c.keys[h]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.key, nil
	}
	if until, ok := c.unknown[h]; ok && now.Before(until) {
		c.mu.Unlock()
		return nil, usage.Errorf(usage.CodeNotFound, "api key not found")
	}
	if l, ok := c.inflight[h]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
			return l.key, l.err
		case <-ctx.Done():
			return nil, usage.Errorf(usage.CodeUnavailable, "api key lookup interrupted")
		}
	}
	l := &lookup{done: make(chan struct{})}
	c.inflight[h] = l
	c.mu.Unlock()

	l.key, l.err = c.store.APIKeyByHash(ctx, hash)
	c.mu.Lock()
	delete(c.inflight, h)
	switch {
	case l.err == nil:
		put(c.keys, h, cachedKey{key: l.key, expires: now.Add(c.ttl)}, func(e cachedKey) bool { return now.Before(e.expires) })
	case usage.ErrorCode(l.err) == usage.CodeNotFound:
		put(c.unknown, h, now.Add(c.unknownTTL), now.Before)
	}
	c.mu.Unlock()
	close(l.done)
	return l.key, l.err
}

// put adds k to m, which holds at most maxCachedKeys entries: when full,
// the entries that are no longer live are swept, and then live ones (in
// map order, which is arbitrary) until at most half of maxCachedKeys is
// left. A sweep walks the whole map under the cache's lock; leaving half of
// it free means one sweep per maxCachedKeys/2 new entries at most, even
// when a flood of distinct keys makes the oldest expire one at a time (a
// sweep that only made room for the one key to add cost a walk of the
// map per key).
func put[V any](m map[string]V, k string, v V, live func(V) bool) {
	if _, ok := m[k]; !ok && len(m) >= maxCachedKeys {
		for old, e := range m {
			if !live(e) {
				delete(m, old)
			}
		}
		for old := range m {
			if len(m) <= maxCachedKeys/2 {
				break
			}
			delete(m, old)
		}
	}
	m[k] = v
}

// RevokeAPIKey revokes the key in the store and drops it from the cache.
func (c *KeyCache) RevokeAPIKey(ctx context.Context, userID, keyID string) error {
	err := c.store.RevokeAPIKey(ctx, userID, keyID)
	c.mu.Lock()
	for h, e := range c.keys {
		if e.key.ID == keyID {
			delete(c.keys, h)
		}
	}
	c.mu.Unlock()
	return err
}

// Len reports how many known and unknown keys the cache holds.
func (c *KeyCache) Len() (known, unknown int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys), len(c.unknown)
}
