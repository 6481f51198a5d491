package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/usage"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
)

const (
	iss = "https://auth.nexus.test/"
	aud = "nexus-usage"
)

func claims(mod func(c *auth.Claims)) *auth.Claims {
	c := &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: iss, Subject: user, Audience: jwt.ClaimStrings{aud},
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
	if mod != nil {
		mod(c)
	}
	return c
}

func hs256(t *testing.T, c *auth.Claims, key []byte) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWTVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hsVerifier, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"HS256"},
		HMACSecret: secret, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rsVerifier, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"RS256"},
		PublicKey: &rsaKey.PublicKey, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rs256 := func(c *auth.Claims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	good := hs256(t, claims(nil), secret)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"`+user+`","role":"admin"}`)) + "." + parts[2]

	tests := []struct {
		name     string
		verifier *auth.JWTVerifier
		token    string
		ok       bool
		admin    bool
	}{
		{"valid HS256", hsVerifier, good, true, false},
		{"valid RS256", rsVerifier, rs256(claims(nil)), true, false},
		{"admin role", hsVerifier, hs256(t, claims(func(c *auth.Claims) { c.Role = "admin" }), secret), true, true},
		{"alg none", hsVerifier, none, false, false},
		{"wrong algorithm", hsVerifier, rs256(claims(nil)), false, false},
		{"HS256 signed with the RSA public key", rsVerifier, hs256(t, claims(nil), pubPEM), false, false},
		{"bad signature", hsVerifier, hs256(t, claims(nil), []byte("another-secret-another-secret-xx")), false, false},
		{"tampered payload", hsVerifier, tampered, false, false},
		{"expired", hsVerifier, hs256(t, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) }), secret), false, false},
		{"expired within leeway", hsVerifier, hs256(t, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-10 * time.Second)) }), secret), true, false},
		{"no expiry", hsVerifier, hs256(t, claims(func(c *auth.Claims) { c.ExpiresAt = nil }), secret), false, false},
		{"issued in the future", hsVerifier, hs256(t, claims(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) }), secret), false, false},
		{"wrong audience", hsVerifier, hs256(t, claims(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} }), secret), false, false},
		{"wrong issuer", hsVerifier, hs256(t, claims(func(c *auth.Claims) { c.Issuer = "https://evil/" }), secret), false, false},
		{"sub not a user id", hsVerifier, hs256(t, claims(func(c *auth.Claims) { c.Subject = "alice" }), secret), false, false},
		{"malformed", hsVerifier, "not.a.jwt", false, false},
		{"empty", hsVerifier, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.verifier.Verify(tt.token)
			if tt.ok {
				if err != nil {
					t.Fatalf("Verify: %v; want ok", err)
				}
				if id.UserID != user || id.Admin != tt.admin {
					t.Errorf("identity = %+v; want user %s admin %v", id, user, tt.admin)
				}
				return
			}
			if usage.ErrorCode(err) != usage.CodeUnauthorized {
				t.Errorf("Verify = %+v, %v; want %s", id, err, usage.CodeUnauthorized)
			}
		})
	}
}

func TestNewJWTVerifierConfig(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tests := []struct {
		name string
		cfg  auth.JWTConfig
		ok   bool
	}{
		{"hmac", auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"HS256"}, HMACSecret: secret}, true},
		{"ecdsa", auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"ES256"}, PublicKey: &ecKey.PublicKey}, true},
		{"no issuer", auth.JWTConfig{Audience: aud, Algorithms: []string{"HS256"}, HMACSecret: secret}, false},
		{"no algorithms", auth.JWTConfig{Issuer: iss, Audience: aud, HMACSecret: secret}, false},
		{"none allowed", auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"none"}}, false},
		{"short secret", auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"HS256"}, HMACSecret: []byte("short")}, false},
		{"RS256 without a key", auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"RS256"}}, false},
		{"ES256 with an RSA-less key", auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"ES256"}, HMACSecret: secret}, false},
		{"ES256 with a P-384 key", auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"ES256"}, PublicKey: &p384.PublicKey}, false},
		{"ES384 with a P-384 key", auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"ES384"}, PublicKey: &p384.PublicKey}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := auth.NewJWTVerifier(tt.cfg)
			if (err == nil) != tt.ok {
				t.Errorf("NewJWTVerifier: %v; want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestSign(t *testing.T) {
	v, _ := auth.NewJWTVerifier(auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"HS256"}, HMACSecret: secret, Now: func() time.Time { return now }})
	tok, err := auth.Sign(secret, iss, aud, user, true, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(tok)
	if err != nil || !id.Admin || id.UserID != user {
		t.Errorf("Verify(Sign(...)) = %+v, %v", id, err)
	}
}

type keyStore struct{ usage.APIKeyStore }

func (keyStore) APIKeyByHash(ctx context.Context, hash []byte) (*usage.APIKey, error) {
	return nil, usage.Errorf(usage.CodeNotFound, "no")
}

func TestAuthenticate(t *testing.T) {
	v, _ := auth.NewJWTVerifier(auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"HS256"}, HMACSecret: secret, Now: func() time.Time { return now }})
	a := &auth.Authenticator{Keys: keyStore{}, JWT: v}
	good := hs256(t, claims(nil), secret)
	tests := []struct {
		name    string
		headers map[string]string
		ok      bool
	}{
		{"bearer", map[string]string{"Authorization": "Bearer " + good}, true},
		{"bearer lowercase scheme", map[string]string{"Authorization": "bearer " + good}, true},
		{"missing", map[string]string{}, false},
		{"basic", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, false},
		{"bearer without token", map[string]string{"Authorization": "Bearer "}, false},
		{"unknown api key", map[string]string{"X-Api-Key": "nx_unknownunknownunknown"}, false},
		{"unknown api key scheme", map[string]string{"Authorization": "ApiKey nx_unknownunknownunknown"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := a.Authenticate(context.Background(), func(n string) string { return tt.headers[n] })
			if tt.ok != (err == nil) {
				t.Fatalf("Authenticate = %+v, %v; want ok=%v", id, err, tt.ok)
			}
			if !tt.ok && usage.ErrorCode(err) != usage.CodeUnauthorized {
				t.Errorf("code %q; want %s", usage.ErrorCode(err), usage.CodeUnauthorized)
			}
		})
	}
}

// TestJWTVerifyRefusesLargeTokens: a token longer than MaxTokenBytes is
// refused before it is decoded, even one the issuer signed, and through
// Authenticate a 1 MB Authorization header costs no decoding; a token at
// the bound verifies.
func TestJWTVerifyRefusesLargeTokens(t *testing.T) {
	v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: iss, Audience: aud, Algorithms: []string{"HS256"},
		HMACSecret: secret, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// padded is a signed token of exactly n bytes: the audience list
	// carries the padding (4 base64 characters per 3 bytes of JSON).
	padded := func(n int) string {
		t.Helper()
		short := hs256(t, claims(nil), secret)
		pad := (n - len(short) - len(`,"x"`)*4/3) * 3 / 4
		for pad >= 0 {
			tok := hs256(t, claims(func(c *auth.Claims) { c.Audience = append(c.Audience, strings.Repeat("x", pad)) }), secret)
			switch {
			case len(tok) == n:
				return tok
			case len(tok) > n:
				pad--
				continue
			}
			pad++
		}
		t.Fatalf("no token of %d bytes", n)
		return ""
	}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"at the bound", padded(auth.MaxTokenBytes), true},
		{"a byte over", padded(auth.MaxTokenBytes + 1), false},
		{"1 MB, signed", padded(1 << 20), false},
		{"1 MB, unsigned", strings.Repeat("a", 1<<20) + ".b.c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(tt.token)
			if tt.ok {
				if err != nil || id.UserID != user {
					t.Errorf("Verify(%d bytes) = %+v, %v; want %s", len(tt.token), id, err, user)
				}
				return
			}
			want := fmt.Sprintf("invalid token: longer than %d bytes", auth.MaxTokenBytes)
			if usage.ErrorCode(err) != usage.CodeUnauthorized || usage.ErrorMessage(err) != want {
				t.Errorf("Verify(%d bytes) = %+v, %v; want %s %q", len(tt.token), id, err, usage.CodeUnauthorized, want)
			}
		})
	}

	a := &auth.Authenticator{Keys: keyStore{}, JWT: v}
	header := "Bearer " + padded(1<<20)
	_, err = a.Authenticate(context.Background(), func(n string) string {
		if n == "Authorization" {
			return header
		}
		return ""
	})
	if usage.ErrorCode(err) != usage.CodeUnauthorized {
		t.Errorf("Authenticate with a 1 MB bearer token: %v; want %s", err, usage.CodeUnauthorized)
	}
}
