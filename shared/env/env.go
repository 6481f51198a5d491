// Package env reads a Lambda function's configuration from its environment:
// typed values with defaults and clear errors, and secrets that are plain
// values locally (NAME) or Secrets Manager secrets in AWS (NAME_SECRET_ARN
// or a named ARN variable).
//
// Example reads a configuration and checks it once.
package env

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// SecretReader reads a secret's string value by ARN or name.
type SecretReader func(ctx context.Context, arn string) (string, error)

// Env reads configuration. Typed getters record the first invalid value,
// which Err returns, so that main can read everything and check once.
type Env struct {
	ctx     context.Context
	lookup  func(string) string
	secrets SecretReader
	err     error
	read    map[string]bool
}

// New returns an Env over getenv that reads secrets from Secrets Manager
// (the client is built on first use, so local runs need no AWS config).
func New(ctx context.Context, getenv func(string) string) *Env {
	return &Env{ctx: ctx, lookup: getenv, secrets: secretsManager(), read: map[string]bool{}}
}

// getenv returns the variable's value and notes that it was read.
func (e *Env) getenv(name string) string {
	e.read[name] = true
	return e.lookup(name)
}

// Read returns the name of every variable read so far, in order: what a
// function's configuration reads, which its test holds to template.yaml.
func (e *Env) Read() []string {
	names := make([]string, 0, len(e.read))
	for n := range e.read {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WithSecrets replaces the secret reader (tests).
func (e *Env) WithSecrets(r SecretReader) *Env { e.secrets = r; return e }

// Err returns the first invalid value met so far.
func (e *Env) Err() error { return e.err }

func (e *Env) fail(name, want, got string) {
	if e.err == nil {
		e.err = fmt.Errorf("%s: want %s, got %q", name, want, got)
	}
}

// String returns the variable or def when unset.
func (e *Env) String(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

// Bool returns true for "true" or "1", false for "false", "0" or unset.
func (e *Env) Bool(name string) bool {
	switch v := e.getenv(name); v {
	case "true", "1":
		return true
	case "", "false", "0":
		return false
	default:
		e.fail(name, "true or false", v)
		return false
	}
}

// Int returns a non-negative integer, def when unset.
func (e *Env) Int(name string, def int) int {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.fail(name, "a non-negative integer", v)
		return def
	}
	return n
}

// Float returns a finite non-negative number, def when unset.
func (e *Env) Float(name string, def float64) float64 {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0) || math.IsInf(f, 1) {
		e.fail(name, "a non-negative number", v)
		return def
	}
	return f
}

// Duration returns a non-negative Go duration ("90s", "24h") or a whole
// number of days ("35d"), def when unset.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		if err == nil && n > int(math.MaxInt64/int64(24*time.Hour)) {
			err = strconv.ErrRange // more days than a duration holds: it would wrap around
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d < 0 {
		e.fail(name, "a duration such as 24h or 35d", v)
		return def
	}
	return d
}

// Secret returns the plain variable when set, else reads the secret named by
// the ARN variable: a JSON object's key, or the whole value. It returns ""
// and no error when neither is set.
func (e *Env) Secret(plain, arnVar, key string) (string, error) {
	if v := e.getenv(plain); v != "" {
		return v, nil
	}
	arn := e.getenv(arnVar)
	if arn == "" {
		return "", nil
	}
	raw, err := e.secrets(e.ctx, arn)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", arnVar, err)
	}
	v, err := secretValue(raw, key)
	if err != nil {
		return "", fmt.Errorf("%s: %w", arnVar, err)
	}
	return v, nil
}

// MustSecret is Secret, failing when neither variable is set.
func (e *Env) MustSecret(plain, arnVar, key string) (string, error) {
	v, err := e.Secret(plain, arnVar, key)
	if err == nil && v == "" {
		err = fmt.Errorf("set %s or %s", plain, arnVar)
	}
	return v, err
}

// secretValue takes key from a JSON object secret, or the plain value.
func secretValue(raw, key string) (string, error) {
	raw = strings.TrimSpace(raw)
	if strings.HasPrefix(raw, "{") {
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return "", fmt.Errorf("secret is not valid JSON")
		}
		s, ok := m[key].(string)
		if !ok || s == "" {
			return "", fmt.Errorf("secret has no string key %q", key)
		}
		return s, nil
	}
	if raw == "" {
		return "", fmt.Errorf("secret is empty")
	}
	return raw, nil
}

func secretsManager() SecretReader {
	var (
		once   sync.Once
		client *secretsmanager.Client
		cerr   error
	)
	return func(ctx context.Context, arn string) (string, error) {
		once.Do(func() {
			cfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				cerr = fmt.Errorf("load AWS config: %w", err)
				return
			}
			client = secretsmanager.NewFromConfig(cfg)
		})
		if cerr != nil {
			return "", cerr
		}
		out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.SecretString), nil
	}
}

// Database returns the PostgreSQL URL (DATABASE_URL, or the "url" key of the
// DATABASE_SECRET_ARN secret) and whether it points at RDS Proxy
// (DATABASE_PROXY). It fails when neither variable is set.
func (e *Env) Database() (url string, proxy bool, err error) {
	url, err = e.MustSecret("DATABASE_URL", "DATABASE_SECRET_ARN", "url")
	return url, e.Bool("DATABASE_PROXY"), err
}
