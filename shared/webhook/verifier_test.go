package webhook_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/webhook"
)

// TestStandardWebhooksVerifier has the Standard Webhooks reference library
// (the standardwebhooks npm package, testdata/verifier) verify what Headers
// signs: with one secret, and during a rotation's overlap, when both the
// old and the new secret sign and a receiver holding either accepts. A
// tampered body, another id and a secret that did not sign are refused,
// so the test cannot pass on a verifier that accepts everything.
func TestStandardWebhooksVerifier(t *testing.T) {
	node, npm := requireNode(t)
	dir, err := filepath.Abs(filepath.Join("testdata", "verifier"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Context(t)
	install := exec.CommandContext(ctx, npm, "ci", "--prefer-offline", "--no-audit", "--no-fund")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}

	oldSecret, newSecret, other := mustSecret(t), mustSecret(t), mustSecret(t)
	now := time.Now()
	body := []byte(`{"type":"usage.threshold.reached","timestamp":"2026-03-15T12:00:00Z","data":{"user_id":"0190a4c4-52a4-7000-8000-000000000001","percent":80}}`)
	sign := func(secrets ...string) map[string]string {
		h, err := webhook.Headers(notify.Request{MessageID: "msg_2tZ5cTQxEVZcGkJtqhXsqqrBzc0", Timestamp: now, Body: body, Secrets: secrets})
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"webhook-id": h.Get(webhook.HeaderID), "webhook-timestamp": h.Get(webhook.HeaderTimestamp),
			"webhook-signature": h.Get(webhook.HeaderSignature)}
	}
	single, rotating := sign(oldSecret), sign(oldSecret, newSecret)
	otherID := sign(oldSecret)
	otherID["webhook-id"] = "msg_another"
	type input struct {
		Secret  string            `json:"secret"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	cases := []struct {
		name string
		in   input
		ok   bool
	}{
		{"one secret", input{oldSecret, single, string(body)}, true},
		{"rotation, receiver holds the old secret", input{oldSecret, rotating, string(body)}, true},
		{"rotation, receiver holds the new secret", input{newSecret, rotating, string(body)}, true},
		{"new secret before the rotation", input{newSecret, single, string(body)}, false},
		{"a secret that never signed", input{other, rotating, string(body)}, false},
		{"tampered body", input{oldSecret, single, strings.Replace(string(body), "80", "100", 1)}, false},
		{"another id", input{oldSecret, otherID, string(body)}, false},
	}
	var ins []input
	for _, c := range cases {
		ins = append(ins, c.in)
	}
	stdin, err := json.Marshal(ins)
	if err != nil {
		t.Fatal(err)
	}
	run := exec.CommandContext(ctx, node, "verify.mjs")
	run.Dir = dir
	run.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("node verify.mjs: %v\n%s", err, stderr.String())
	}
	var got []struct {
		OK    bool   `json:"ok"`
		Type  string `json:"type"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
		t.Fatalf("verifier's answer %s: %v", out, err)
	}
	for i, c := range cases {
		if got[i].OK != c.ok {
			t.Errorf("%s: the reference verifier said ok=%v (%s), want %v", c.name, got[i].OK, got[i].Error, c.ok)
		}
		if c.ok && got[i].Type != "usage.threshold.reached" {
			t.Errorf("%s: verified payload's type %q", c.name, got[i].Type)
		}
		// Verify, the receiver side of this package, agrees with the reference.
		h := make(map[string][]string)
		for k, v := range c.in.Headers {
			h[httpKey(k)] = []string{v}
		}
		if err := webhook.Verify(c.in.Secret, h, []byte(c.in.Body), now, 0); (err == nil) != c.ok {
			t.Errorf("%s: webhook.Verify: %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func httpKey(k string) string {
	parts := strings.Split(k, "-")
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "-")
}

func mustSecret(t *testing.T) string {
	t.Helper()
	s, err := notify.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// requireNode returns node's and npm's paths; without them the test skips,
// or fails under CI=true.
func requireNode(t *testing.T) (node, npm string) {
	t.Helper()
	fail := func(format string, args ...any) { t.Helper(); testkit.Missing(t, format, args...) }
	node, err := exec.LookPath("node")
	if err != nil {
		fail("node is not on PATH, so the reference Standard Webhooks verifier does not run: install Node.js 20 or later (%v)", err)
	}
	npm, err = exec.LookPath("npm")
	if err != nil {
		fail("npm is not on PATH, so the reference Standard Webhooks verifier does not run (%v)", err)
	}
	return node, npm
}
