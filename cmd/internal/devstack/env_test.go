package devstack

import (
	"slices"
	"strings"
	"testing"
)

// TestFunctionEnvIsTheTemplates holds the local stack's functions to the
// environment template.yaml gives them: its defaults for every setting
// (pgx as behind RDS Proxy among them), local stand-ins only for what a
// deployment alone knows, and overrides from the stack's own environment.
func TestFunctionEnvIsTheTemplates(t *testing.T) {
	tmpl := testTemplate(t, testRoot(t))
	st := &State{DatabaseURL: "postgres://local/nexus", QueueURL: "http://127.0.0.1:1/q", SQSEndpoint: "http://127.0.0.1:1"}
	none := func(string) string { return "" }
	for _, fn := range tmpl.Functions {
		env := functionEnv(&fn, none, "us-east-1", st)
		for name, v := range fn.Env {
			got, set := lookup(env, name)
			switch {
			case name == "DATABASE_URL":
				if got != st.DatabaseURL {
					t.Errorf("%s: DATABASE_URL = %q; want the local database", fn.Name, got)
				}
			case v.Deployed:
				if name == "USAGE_QUEUE_URL" && got != st.QueueURL {
					t.Errorf("%s: USAGE_QUEUE_URL = %q; want the local queue", fn.Name, got)
				}
			case !set || got != v.Default:
				t.Errorf("%s: %s = %q (set %v); want the template's default %q", fn.Name, name, got, set, v.Default)
			}
		}
		if got, _ := lookup(env, "DATABASE_PROXY"); got != "true" {
			t.Errorf("%s: DATABASE_PROXY = %q; want the template's default, true", fn.Name, got)
		}
		for _, name := range []string{"STAGE", "DATABASE_SECRET_ARN"} {
			if _, set := lookup(env, name); set {
				t.Errorf("%s: %s is set; the template gives no value for it that a local run could use", fn.Name, name)
			}
		}
	}
	over := func(k string) string {
		return map[string]string{"DATABASE_PROXY": "false", "BACKFILL_WINDOW": "7d", "USAGE_QUEUE_URL": "http://elsewhere"}[k]
	}
	env := functionEnv(tmpl.Function("analytics"), over, "us-east-1", st)
	for name, want := range map[string]string{"DATABASE_PROXY": "false", "BACKFILL_WINDOW": "7d", "USAGE_QUEUE_URL": st.QueueURL} {
		if got, _ := lookup(env, name); got != want {
			t.Errorf("overridden %s = %q; want %q", name, got, want)
		}
	}
}

func lookup(env []string, name string) (string, bool) {
	i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	if i < 0 {
		return "", false
	}
	return strings.TrimPrefix(env[i], name+"="), true
}
