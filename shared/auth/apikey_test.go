package auth_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

const user = "9d4c6c1e-2b7f-4f0e-a1c3-5e6f7a8b9c0d"

func TestNewAPIKey(t *testing.T) {
	secret, k, err := auth.NewAPIKey(user, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, auth.KeyPrefix) || !strings.HasPrefix(secret, k.Prefix) || len(k.Prefix) != 11 {
		t.Errorf("secret %q, prefix %q: the prefix must be the visible start of the key", secret, k.Prefix)
	}
	if !bytes.Equal(k.Hash, auth.HashAPIKey(secret)) || len(k.Hash) != 32 {
		t.Errorf("hash is not the SHA-256 of the key")
	}
	if strings.Contains(string(k.Hash), secret) {
		t.Errorf("the record holds the secret")
	}
	other, _, _ := auth.NewAPIKey(user, "ci")
	if other == secret {
		t.Errorf("two keys are equal")
	}
	if _, _, err := auth.NewAPIKey("nope", ""); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("bad user id: %v", err)
	}
}

func TestAPIKeyLookupAndRevoke(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	keys := postgres.NewAPIKeyStore(db)

	secret, k, err := auth.NewAPIKey(user, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.CreateAPIKey(ctx, k); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if err := keys.CreateAPIKey(ctx, k); usage.ErrorCode(err) != usage.CodeConflict {
		t.Errorf("CreateAPIKey twice: %v; want %s", err, usage.CodeConflict)
	}
	var stored int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_api_keys WHERE position($1::bytea IN key_hash) > 0 OR prefix = $2`,
		[]byte(secret), secret).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("the plaintext key is stored (%d, %v)", stored, err)
	}

	id, err := auth.LookupAPIKey(ctx, keys, secret)
	if err != nil {
		t.Fatalf("LookupAPIKey: %v", err)
	}
	if id.UserID != user || id.APIKeyID != k.ID || id.Admin {
		t.Errorf("identity = %+v", id)
	}
	for _, bad := range []string{"", "nx_short", "xx_" + secret[3:], secret + "x", secret[:len(secret)-1]} {
		if _, err := auth.LookupAPIKey(ctx, keys, bad); usage.ErrorCode(err) != usage.CodeUnauthorized {
			t.Errorf("LookupAPIKey(%q) = %v; want %s", bad, err, usage.CodeUnauthorized)
		}
	}

	if err := keys.RevokeAPIKey(ctx, "00000000-0000-4000-8000-000000000000", k.ID); usage.ErrorCode(err) != usage.CodeNotFound {
		t.Errorf("another user revoking: %v; want %s", err, usage.CodeNotFound)
	}
	if err := keys.RevokeAPIKey(ctx, user, k.ID); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	if _, err := auth.LookupAPIKey(ctx, keys, secret); usage.ErrorCode(err) != usage.CodeUnauthorized {
		t.Errorf("revoked key: %v; want %s", err, usage.CodeUnauthorized)
	}
	if err := keys.RevokeAPIKey(ctx, user, k.ID); usage.ErrorCode(err) != usage.CodeNotFound {
		t.Errorf("revoking twice: %v; want %s", err, usage.CodeNotFound)
	}
}
