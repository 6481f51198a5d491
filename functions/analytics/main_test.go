package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"testing"

	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres/pgtest"
)

func pemKey(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestBuildRefusesBadConfig needs no database: every bad setting is
// refused before anything connects.
func TestBuildRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	vars := func(m map[string]string) *env.Env {
		return env.New(ctx, func(k string) string { return m[k] })
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const secret = "0123456789abcdef0123456789abcdef"
	jwt := map[string]string{"JWT_ISSUER": "https://auth.test/", "JWT_AUDIENCE": "nexus-usage"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{"DATABASE_URL": "postgres://x"}
		for k, v := range jwt {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for name, bad := range map[string]map[string]string{
		"no database":       {},
		"no key":            with(nil),
		"short secret":      with(map[string]string{"JWT_HMAC_SECRET": "short"}),
		"not PEM":           with(map[string]string{"JWT_PUBLIC_KEY": "nope"}),
		"bad PEM":           with(map[string]string{"JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}),
		"no issuer":         {"DATABASE_URL": "postgres://x", "JWT_HMAC_SECRET": secret},
		"bad proxy setting": with(map[string]string{"JWT_HMAC_SECRET": secret, "DATABASE_PROXY": "maybe"}),
		"backfill too long": with(map[string]string{"JWT_HMAC_SECRET": secret, "BACKFILL_WINDOW": "60d"}),
		"no grace period":   with(map[string]string{"JWT_HMAC_SECRET": secret, "GRACE_PERIOD": "0h"}),
		"no read rate":      with(map[string]string{"JWT_HMAC_SECRET": secret, "READ_RATE_PER_SECOND": "0"}),
		"read burst small":  with(map[string]string{"JWT_HMAC_SECRET": secret, "READ_BURST": "11"}),
	} {
		if _, err := setup(ctx, vars(bad), logger); err == nil {
			t.Errorf("setup(%s): no error", name)
		}
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	for _, tt := range []struct {
		name string
		pub  any
		alg  string
	}{
		{"RSA", &rsaKey.PublicKey, "RS256"},
		{"P-256", &ecKey.PublicKey, "ES256"},
		{"P-384", &p384.PublicKey, "ES384"},
		{"P-521", &p521.PublicKey, "ES512"},
	} {
		_, alg, err := parsePublicKey(pemKey(t, tt.pub))
		if err != nil || alg != tt.alg {
			t.Errorf("parsePublicKey(%s) = %q, %v; want %s", tt.name, alg, err, tt.alg)
		}
	}
}

// TestBuild wires the handler to a real database, with and without a
// queue.
func TestBuild(t *testing.T) {
	url := pgtest.NewURL(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	vars := func(m map[string]string) *env.Env {
		return env.New(ctx, func(k string) string { return m[k] })
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	const secret = "0123456789abcdef0123456789abcdef"
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{"JWT_ISSUER": "https://auth.test/", "JWT_AUDIENCE": "nexus-usage"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	h, err := setup(ctx, vars(with(map[string]string{"DATABASE_URL": url, "JWT_HMAC_SECRET": secret})), logger)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if h.Publisher != nil || h.Limits == nil || h.Reads == nil || h.Usage == nil || h.Admin == nil || h.Auth == nil {
		t.Errorf("without USAGE_QUEUE_URL: publisher %v, limits %v", h.Publisher, h.Limits)
	}
	h, err = setup(ctx, vars(with(map[string]string{"DATABASE_URL": url, "JWT_PUBLIC_KEY": pemKey(t, &rsaKey.PublicKey),
		"USAGE_QUEUE_URL": "http://127.0.0.1:1/000000000000/usage", "ALERT_BUS_NAME": "alerts", "AWS_REGION": "us-east-1"})), logger)
	if err != nil {
		t.Fatalf("build with a queue: %v", err)
	}
	if h.Publisher == nil {
		t.Errorf("with USAGE_QUEUE_URL: no publisher")
	}
}
