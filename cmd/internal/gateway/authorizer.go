package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// authorize verifies a bearer token as the JWT authorizer does and returns
// its claims as API Gateway passes them (every value a string).
func (g *Gateway) authorize(header string) (map[string]string, []string, error) {
	if g.Verifier == nil {
		return nil, nil, errors.New("no verifier")
	}
	token := strings.TrimSpace(header)
	if scheme, rest, ok := strings.Cut(token, " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(rest)
	}
	if token == "" {
		return nil, nil, errors.New("no token")
	}
	if _, err := g.Verifier.Verify(token); err != nil {
		return nil, nil, err
	}
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, nil, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, nil, err
	}
	claims := make(map[string]string, len(m))
	for k, v := range m {
		claims[k] = claimString(v)
	}
	var scopes []string
	if s, ok := m["scope"].(string); ok {
		scopes = strings.Fields(s)
	}
	return claims, scopes, nil
}

// claimString renders a claim the way API Gateway's JWT authorizer does:
// strings as they are, numbers in decimal, arrays as "[a b]".
func claimString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case []any:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = claimString(e)
		}
		return "[" + strings.Join(s, " ") + "]"
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}
