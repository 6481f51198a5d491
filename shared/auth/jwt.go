package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus/usage/shared/usage"
)

// DefaultLeeway bounds the clock skew allowed on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// MaxTokenBytes bounds a bearer token. A longer one is refused before it
// is decoded: its header and claims would be decoded, and its signature
// computed over all of it, before anything says who sent it. 8 KiB holds
// any token an issuer gives a user of this API many times over.
const MaxTokenBytes = 8 << 10

// JWTConfig says which bearer tokens to accept.
type JWTConfig struct {
	// Issuer and Audience must match the token's iss and aud.
	Issuer   string
	Audience string
	// Algorithms is the allow-list, e.g. ["RS256"] or ["HS256"]; a token
	// signed with anything else, "none" included, is refused.
	Algorithms []string
	// HMACSecret verifies HS* tokens; PublicKey verifies RS*, PS* and ES*
	// tokens (an *rsa.PublicKey or *ecdsa.PublicKey).
	HMACSecret []byte
	PublicKey  crypto.PublicKey
	// Leeway is the allowed clock skew; zero means DefaultLeeway.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Claims are the token claims the system reads: sub is the user and a role
// of "admin" marks operators.
type Claims struct {
	Role string `json:"role,omitempty"`
	jwt.RegisteredClaims
}

// JWTVerifier verifies bearer tokens.
type JWTVerifier struct {
	cfg    JWTConfig
	parser *jwt.Parser
}

// NewJWTVerifier checks the configuration and returns a verifier.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("jwt: issuer and audience are required")
	}
	if len(cfg.Algorithms) == 0 {
		return nil, errors.New("jwt: an algorithm allow-list is required")
	}
	for _, a := range cfg.Algorithms {
		m := jwt.GetSigningMethod(a)
		switch m := m.(type) {
		case *jwt.SigningMethodHMAC:
			if len(cfg.HMACSecret) < 32 {
				return nil, fmt.Errorf("jwt: %s needs a secret of at least 32 bytes", a)
			}
		case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
			if _, ok := cfg.PublicKey.(*rsa.PublicKey); !ok {
				return nil, fmt.Errorf("jwt: %s needs an RSA public key", a)
			}
		case *jwt.SigningMethodECDSA:
			// ES256 verifies P-256 keys only, ES384 P-384 and ES512 P-521:
			// with another curve every token would be refused.
			k, ok := cfg.PublicKey.(*ecdsa.PublicKey)
			if !ok {
				return nil, fmt.Errorf("jwt: %s needs an ECDSA public key", a)
			}
			if k.Curve == nil || k.Curve.Params().BitSize != m.CurveBits {
				return nil, fmt.Errorf("jwt: %s needs a key on the %d-bit curve", a, m.CurveBits)
			}
		default:
			return nil, fmt.Errorf("jwt: algorithm %q is not supported", a)
		}
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := jwt.NewParser(
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)
	return &JWTVerifier{cfg: cfg, parser: p}, nil
}

// Verify checks the token's size (at most MaxTokenBytes), signature,
// algorithm, issuer, audience and times, and returns the caller. Every
// failure is CodeUnauthorized with a message that says which check failed
// but nothing of the token.
func (v *JWTVerifier) Verify(token string) (usage.Identity, error) {
	if len(token) > MaxTokenBytes {
		return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "invalid token: longer than %d bytes", MaxTokenBytes)
	}
	var c Claims
	_, err := v.parser.ParseWithClaims(token, &c, v.key)
	if err != nil {
		return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "invalid token: %s", reason(err))
	}
	if !usage.IsUUID(c.Subject) {
		return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "invalid token: sub must be a user id")
	}
	return usage.Identity{UserID: c.Subject, Admin: c.Role == "admin"}, nil
}

func (v *JWTVerifier) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		return v.cfg.HMACSecret, nil
	default:
		return v.cfg.PublicKey, nil
	}
}

func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature or algorithm"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing claim"
	}
	return "rejected"
}

// Sign issues a token for the user, for local tools and tests that hold the
// HMAC secret. ttl is how long it stays valid.
func Sign(secret []byte, issuer, audience, userID string, admin bool, now time.Time, ttl time.Duration) (string, error) {
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   userID,
		Audience:  jwt.ClaimStrings{audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	if admin {
		c.Role = "admin"
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
