package env_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/env"
)

func newEnv(vars map[string]string, secrets map[string]string) *env.Env {
	return env.New(context.Background(), func(k string) string { return vars[k] }).
		WithSecrets(func(ctx context.Context, arn string) (string, error) {
			v, ok := secrets[arn]
			if !ok {
				return "", errors.New("ResourceNotFoundException")
			}
			return v, nil
		})
}

func TestTyped(t *testing.T) {
	e := newEnv(map[string]string{"D": "35d", "G": "90s", "I": "7", "F": "2.5", "B": "true", "S": "x"}, nil)
	if got := e.Duration("D", 0); got != 35*24*time.Hour {
		t.Errorf("Duration(35d) = %v", got)
	}
	if got := e.Duration("G", 0); got != 90*time.Second {
		t.Errorf("Duration(90s) = %v", got)
	}
	if got := e.Duration("UNSET", time.Hour); got != time.Hour {
		t.Errorf("Duration default = %v", got)
	}
	if e.Int("I", 0) != 7 || e.Float("F", 0) != 2.5 || !e.Bool("B") || e.String("S", "") != "x" || e.String("U", "d") != "d" {
		t.Errorf("typed getters wrong")
	}
	if err := e.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
}

// TestTypedRefusesWhatItCannotHold: a number of days beyond what a
// duration holds is refused rather than wrapped around (213504d read as
// 25 minutes), and a number that is not finite is no number.
func TestTypedRefusesWhatItCannotHold(t *testing.T) {
	tests := []struct {
		value string
		read  func(e *env.Env) any
	}{
		{"213504d", func(e *env.Env) any { return e.Duration("V", time.Hour) }},
		{"106752d", func(e *env.Env) any { return e.Duration("V", time.Hour) }},
		{"NaN", func(e *env.Env) any { return e.Float("V", 1) }},
		{"Inf", func(e *env.Env) any { return e.Float("V", 1) }},
		{"+infinity", func(e *env.Env) any { return e.Float("V", 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			e := newEnv(map[string]string{"V": tt.value}, nil)
			got := tt.read(e)
			if err := e.Err(); err == nil || !strings.HasPrefix(err.Error(), "V:") {
				t.Errorf("V=%s read as %v, Err = %v; want an error naming V", tt.value, got, err)
			}
		})
	}
	e := newEnv(map[string]string{"V": "106751d"}, nil)
	if got := e.Duration("V", 0); e.Err() != nil || got != 106751*24*time.Hour {
		t.Errorf("Duration(106751d) = %v, %v; want 106751 days", got, e.Err())
	}
}

func TestTypedErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name string
		read func(e *env.Env)
	}{
		{"DURATION", func(e *env.Env) { e.Duration("DURATION", 0) }},
		{"INT", func(e *env.Env) { e.Int("INT", 0) }},
		{"FLOAT", func(e *env.Env) { e.Float("FLOAT", 0) }},
		{"BOOL", func(e *env.Env) { e.Bool("BOOL") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(map[string]string{tt.name: "-x"}, nil)
			tt.read(e)
			if err := e.Err(); err == nil || !strings.HasPrefix(err.Error(), tt.name+":") {
				t.Errorf("Err = %v; want an error naming %s", err, tt.name)
			}
		})
	}
}

func TestSecret(t *testing.T) {
	secrets := map[string]string{
		"arn:json":  `{"url":"postgres://a","api_key":"sk_1"}`,
		"arn:plain": "postgres://plain\n",
		"arn:bad":   `{"url":`,
		"arn:nokey": `{"other":"x"}`,
	}
	tests := []struct {
		name    string
		vars    map[string]string
		want    string
		wantErr bool
	}{
		{"plain value wins", map[string]string{"DATABASE_URL": "postgres://local", "DATABASE_SECRET_ARN": "arn:json"}, "postgres://local", false},
		{"json key", map[string]string{"DATABASE_SECRET_ARN": "arn:json"}, "postgres://a", false},
		{"plain secret", map[string]string{"DATABASE_SECRET_ARN": "arn:plain"}, "postgres://plain", false},
		{"bad json", map[string]string{"DATABASE_SECRET_ARN": "arn:bad"}, "", true},
		{"missing key", map[string]string{"DATABASE_SECRET_ARN": "arn:nokey"}, "", true},
		{"unreadable", map[string]string{"DATABASE_SECRET_ARN": "arn:none"}, "", true},
		{"neither", map[string]string{}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newEnv(tt.vars, secrets).Secret("DATABASE_URL", "DATABASE_SECRET_ARN", "url")
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("Secret = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if _, err := newEnv(nil, nil).MustSecret("DATABASE_URL", "DATABASE_SECRET_ARN", "url"); err == nil {
		t.Errorf("MustSecret with neither set: no error")
	}
}

func TestDatabase(t *testing.T) {
	url, proxy, err := newEnv(map[string]string{"DATABASE_URL": "postgres://x", "DATABASE_PROXY": "true"}, nil).Database()
	if url != "postgres://x" || !proxy || err != nil {
		t.Errorf("Database() = %q, %v, %v", url, proxy, err)
	}
	if _, _, err := newEnv(nil, nil).Database(); err == nil {
		t.Errorf("Database() without configuration: no error")
	}
}
