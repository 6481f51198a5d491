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

// maxCachedKeys bounds the cache; when full it is emptied and refilled.
const maxCachedKeys = 10_000

// KeyCache is an APIKeyStore that remembers active keys for a TTL, so that
// a caller's requests after the first cost no key lookup: with a warm limit
// cache the metered request path is then one statement. Unknown keys are
// not cached (each costs a lookup), and a key revoked through this store is
// dropped at once; one revoked elsewhere stops working within the TTL.
type KeyCache struct {
	store usage.APIKeyStore
	ttl   time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]cachedKey // by hash
}

type cachedKey struct {
	key     *usage.APIKey
	expires time.Time
}

// NewKeyCache wraps store. ttl ≤ 0 means DefaultKeyCacheTTL; now nil means
// time.Now.
func NewKeyCache(store usage.APIKeyStore, ttl time.Duration, now func() time.Time) *KeyCache {
	if ttl <= 0 {
		ttl = DefaultKeyCacheTTL
	}
	if now == nil {
		now = time.Now
	}
	return &KeyCache{store: store, ttl: ttl, now: now, keys: map[string]cachedKey{}}
}

var _ usage.APIKeyStore = (*KeyCache)(nil)

// CreateAPIKey stores k.
func (c *KeyCache) CreateAPIKey(ctx context.Context, k *usage.APIKey) error {
	return c.store.CreateAPIKey(ctx, k)
}

// APIKeyByHash returns the key from the cache, or looks it up and caches it.
func (c *KeyCache) APIKeyByHash(ctx context.Context, hash []byte) (*usage.APIKey, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.keys[string(hash)]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.key, nil
	}
	k, err := c.store.APIKeyByHash(ctx, hash)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.keys) >= maxCachedKeys {
		c.keys = map[string]cachedKey{}
	}
	c.keys[string(hash)] = cachedKey{key: k, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return k, nil
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
