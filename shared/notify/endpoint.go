package notify

import (
	"crypto/rand"
	"encoding/base64"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Bounds of endpoints.
const (
	// MaxEndpoints bounds the endpoints of one user (and the platform's).
	MaxEndpoints = 10
	// MaxURL bounds an endpoint's URL, in bytes.
	MaxURL = 2048
	// SecretPrefix starts every endpoint secret: Standard Webhooks'
	// whsec_, then the base64 of the key's bytes.
	SecretPrefix = "whsec_"
	// secretBytes is the length of a new key (Standard Webhooks: 24 to 64).
	secretBytes = 32
	// DefaultRotationOverlap is how long a rotated secret keeps signing
	// beside the new one, so that receivers can change theirs.
	DefaultRotationOverlap = 24 * time.Hour
	// MaxRotationOverlap bounds the overlap a rotation may ask for.
	MaxRotationOverlap = 7 * 24 * time.Hour
)

// Endpoint is a webhook endpoint: a user's own (UserID), receiving that
// user's events, or the platform's (no UserID), receiving every user's.
type Endpoint struct {
	ID          string `json:"id"`
	UserID      string `json:"user_id,omitempty"`
	URL         string `json:"url"`
	Description string `json:"description"`
	// EventTypes are the events it receives; empty: all of them.
	EventTypes []string `json:"event_types"`
	Enabled    bool     `json:"enabled"`
	// DisabledReason says why an endpoint is not enabled ("" while it is).
	DisabledReason string `json:"disabled_reason,omitempty"`
	// FailingSince is the first failed attempt since the last delivery;
	// nil while the endpoint delivers.
	FailingSince *time.Time `json:"failing_since"`
	// Secret signs every delivery; PreviousSecret signs beside it until
	// PreviousExpiresAt (a rotation's overlap). Never shown in lists.
	Secret            string     `json:"-"`
	PreviousSecret    string     `json:"-"`
	PreviousExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

// Wants reports whether the endpoint receives events of type t.
func (e *Endpoint) Wants(t string) bool {
	return len(e.EventTypes) == 0 || slices.Contains(e.EventTypes, t)
}

// Secrets returns the secrets that sign at now: the current one, then the
// previous one until its overlap ends.
func (e *Endpoint) Secrets(now time.Time) []string {
	s := []string{e.Secret}
	if e.PreviousSecret != "" && e.PreviousExpiresAt != nil && now.Before(*e.PreviousExpiresAt) {
		s = append(s, e.PreviousSecret)
	}
	return s
}

// NewSecret returns a new endpoint secret: whsec_ and the base64 of 32
// random bytes.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// SecretKey returns the key bytes of a whsec_ secret. Errors are
// CodeInvalid.
func SecretKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, usage.FieldErrorf("secret", "must start with %s", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, usage.FieldErrorf("secret", "must be %s and the base64 of 24 to 64 bytes", SecretPrefix)
	}
	return key, nil
}

// EndpointInput is what a caller sets on an endpoint; nil fields of an
// update keep the endpoint's value.
type EndpointInput struct {
	URL         *string   `json:"url"`
	Description *string   `json:"description"`
	EventTypes  *[]string `json:"event_types"`
	Enabled     *bool     `json:"enabled"`
}

// Apply returns e with in's fields set, validated by CheckURL (private
// targets allowed only with allowPrivate) and the bounds. Enabling an
// endpoint clears its disabled reason and failure streak.
func (in EndpointInput) Apply(e Endpoint, allowPrivate bool) (Endpoint, error) {
	if in.URL != nil {
		e.URL = strings.TrimSpace(*in.URL)
	}
	if in.Description != nil {
		e.Description = *in.Description
	}
	if in.EventTypes != nil {
		e.EventTypes = slices.Clone(*in.EventTypes)
	}
	if e.EventTypes == nil {
		e.EventTypes = []string{}
	}
	if in.Enabled != nil {
		if *in.Enabled && !e.Enabled {
			e.DisabledReason, e.FailingSince = "", nil
		}
		if !*in.Enabled && e.Enabled {
			e.DisabledReason = "disabled by its owner"
		}
		e.Enabled = *in.Enabled
	}
	if err := CheckURL(e.URL, allowPrivate); err != nil {
		return e, err
	}
	if err := checkText("description", e.Description); err != nil {
		return e, err
	}
	if len(e.EventTypes) > len(EventTypes) {
		return e, usage.FieldErrorf("event_types", "lists at most %d types", len(EventTypes))
	}
	for _, t := range e.EventTypes {
		if !KnownEventType(t) {
			return e, usage.FieldErrorf("event_types", "%q is not an event type (%s)", t, strings.Join(EventTypes, ", "))
		}
	}
	slices.Sort(e.EventTypes)
	e.EventTypes = slices.Compact(e.EventTypes)
	return e, nil
}

// CheckURL refuses an endpoint URL that is not an absolute https URL
// (http too with allowPrivate, the local stack's), carries credentials or
// a fragment, or names a host that is an address Blocked refuses
// ("localhost" included): CodeInvalid naming url. Host names are resolved
// at each delivery, where the addresses they resolve to are checked again.
func CheckURL(raw string, allowPrivate bool) error {
	if raw == "" || len(raw) > MaxURL {
		return usage.FieldErrorf("url", "must be an absolute URL of at most %d bytes", MaxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return usage.FieldErrorf("url", "must be an absolute URL (https://host/path)")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowPrivate:
	default:
		return usage.FieldErrorf("url", "must use https")
	}
	if u.User != nil {
		return usage.FieldErrorf("url", "must not carry credentials")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return usage.FieldErrorf("url", "must not have a fragment")
	}
	if allowPrivate {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return usage.FieldErrorf("url", "must not point at this machine (localhost)")
	}
	if a, err := netip.ParseAddr(host); err == nil && Blocked(a) {
		return usage.FieldErrorf("url", "must not point at a private, loopback or link-local address (%s)", a)
	}
	return nil
}

// blockedPrefixes are the ranges no delivery goes to outside the local
// stack: this network and unspecified, private (RFC 1918, unique local),
// shared address space (carrier-grade NAT), loopback, link-local
// (cloud metadata services among them), benchmarking, documentation and
// reserved ranges, multicast and broadcast.
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
		"224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Blocked reports whether a delivery to a is refused outside the local
// stack (server-side request forgery): private, loopback, link-local,
// unspecified, multicast and reserved addresses, IPv4 ones also when
// mapped into IPv6 or NAT64's well-known prefix, and IPv6 ones whatever
// zone they name ("::1%lo" is loopback: a prefix never contains a zoned
// address, so the zone is dropped before the ranges are asked).
func Blocked(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.Is6() && netip.MustParsePrefix("64:ff9b::/96").Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return !a.IsValid()
}
