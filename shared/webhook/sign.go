package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock (Standard Webhooks' recommendation).
const DefaultTolerance = 5 * time.Minute

// Sign returns the webhook-signature header of a message: "v1," and the
// base64 HMAC-SHA256 of "id.timestamp.body" under each secret's key,
// space-separated (during a rotation's overlap both secrets sign, and a
// receiver holding either one accepts). Errors are CodeInvalid (a secret
// that is not whsec_ and base64).
func Sign(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	var sigs []string
	for _, s := range secrets {
		key, err := notify.SecretKey(s)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, "v1,"+signature(key, id, ts.Unix(), body))
	}
	return strings.Join(sigs, " "), nil
}

func signature(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Headers returns the signed headers of a request: webhook-id,
// webhook-timestamp, webhook-signature and the JSON content type.
func Headers(r notify.Request) (http.Header, error) {
	sig, err := Sign(r.Secrets, r.MessageID, r.Timestamp, r.Body)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderID, r.MessageID)
	h.Set(HeaderTimestamp, strconv.FormatInt(r.Timestamp.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h, nil
}

// Verify checks a received webhook as a receiver does: its timestamp
// within tolerance of now (DefaultTolerance when 0), and one of its v1
// signatures made with secret over its id, timestamp and body, compared in
// constant time. It returns CodeUnauthorized saying what is wrong.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	key, err := notify.SecretKey(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return usage.Errorf(usage.CodeUnauthorized, "missing %s, %s or %s", HeaderID, HeaderTimestamp, HeaderSignature)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return usage.Errorf(usage.CodeUnauthorized, "%s is not a Unix time in seconds", HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return usage.Errorf(usage.CodeUnauthorized, "%s is %s away from now (tolerance %s)", HeaderTimestamp, d.Round(time.Second), tolerance)
	}
	want := []byte(signature(key, id, ts, body))
	for _, s := range strings.Fields(sigs) {
		v, sig, ok := strings.Cut(s, ",")
		if ok && v == "v1" && hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return usage.Errorf(usage.CodeUnauthorized, "no v1 signature of %s matches the secret", HeaderSignature)
}
