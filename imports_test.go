package usage_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// module is this module's path.
const module = "github.com/nexus/usage"

// vocabulary are the shared packages every adapter may import: the domain
// and the edge vocabulary of HTTP answers.
var vocabulary = map[string]bool{"shared/usage": true, "shared/httpapi": true}

// workflows are the workflow packages beside the domain (DESIGN.md,
// "Layers"): each imports only the domain, and adapters may import them.
var workflows = map[string]bool{
	"shared/billing": true, "shared/limits": true, "shared/notify": true,
	"shared/record": true, "shared/report": true, "shared/rollup": true,
}

// buildsOn are the workflows that truly build on another: the reports
// read the billing ledger's rows.
var buildsOn = map[string]string{"shared/report": "shared/billing"}

// importRule returns why pkg may not import dep ("" when it may). Both are
// paths inside the module ("shared/meter", "shared/usage"). The rules are
// those of DESIGN.md ("Layers"):
//
//   - shared/usage, the domain, imports no package of this module;
//   - a workflow (shared/limits, shared/rollup, shared/billing,
//     shared/report, shared/notify) imports only the domain, and the
//     workflow it builds on (buildsOn);
//   - a shared adapter imports only the vocabulary (shared/usage and
//     shared/httpapi), the workflows, packages of its own directory tree (as
//     shared/postgres/pgtest imports shared/postgres) and the embedded
//     migrations, never another adapter, a function or a command;
//   - shared/mock imports only the domain and the workflows;
//   - shared/testkit, the tests' kit, may import any shared package, and
//     only tests (and pgtest, the tests' database) import it;
//   - no function imports a command (cmd/*).
//
// Only the imports of non-test files count here: a package's tests may
// run it over the adapters that implement its interfaces (shared/billing's
// over shared/postgres and shared/stripebill, in package billing_test;
// shared/record's over shared/postgres, in package record_test), which
// nothing that ships imports. testImportRule holds the tests to less.
func importRule(pkg, dep string) string {
	top := func(p string) string { // "shared/postgres/pgtest" -> "shared/postgres"
		parts := strings.SplitN(p, "/", 3)
		if len(parts) < 2 {
			return p
		}
		return parts[0] + "/" + parts[1]
	}
	switch {
	case pkg == "shared/usage":
		return "the domain imports no package of this module"
	case workflows[top(pkg)] && strings.HasPrefix(dep, "shared/") && dep != "shared/usage" && top(dep) != top(pkg) && buildsOn[top(pkg)] != top(dep):
		return "a workflow imports only the domain (and the workflow it builds on)"
	case pkg == "shared/mock" && dep != "shared/usage" && !workflows[top(dep)]:
		return "the mocks import only the domain and the workflows"
	case dep == "shared/testkit" && pkg != "shared/postgres/pgtest":
		return "only tests (and pgtest, the tests' database) import the test kit"
	case dep == "shared/testkit":
		return ""
	case pkg == "shared/testkit" && strings.HasPrefix(dep, "shared/"):
		return ""
	case strings.HasPrefix(pkg, "shared/") && (strings.HasPrefix(dep, "functions/") || strings.HasPrefix(dep, "cmd/")):
		return "shared packages import no function or command"
	case strings.HasPrefix(pkg, "shared/") && !strings.HasPrefix(dep, "shared/"):
		return "" // the embedded migrations
	case strings.HasPrefix(pkg, "shared/") && !vocabulary[dep] && !workflows[top(dep)] && top(dep) != top(pkg):
		return "adapters import the domain and httpapi, never another adapter"
	case strings.HasPrefix(pkg, "functions/") && strings.HasPrefix(dep, "cmd/"):
		return "functions import no command"
	}
	return ""
}

// testImportRule returns why a test of pkg may not import dep ("" when it
// may): the tests of a shared package prove that package, over any other
// shared package, and import no function or command; the suites that start
// the whole stack live beside the commands (cmd/internal/e2e).
func testImportRule(pkg, dep string) string {
	if strings.HasPrefix(pkg, "shared/") && (strings.HasPrefix(dep, "functions/") || strings.HasPrefix(dep, "cmd/")) {
		return "the tests of a shared package import no function or command"
	}
	return ""
}

// TestImportRules fails when a package of the module breaks the layering
// of DESIGN.md: it lists every package with go list and checks each of its
// non-test imports of this module against importRule, and those of its
// tests against testImportRule.
func TestImportRules(t *testing.T) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Error", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	type pkg struct {
		ImportPath                string
		Imports                   []string
		TestImports, XTestImports []string
		Error                     *struct{ Err string }
	}
	var violations []string
	packages := 0
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
		packages++
		from := strings.TrimPrefix(p.ImportPath, module+"/")
		for _, imp := range p.Imports {
			to, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if why := importRule(from, to); why != "" {
				violations = append(violations, from+" imports "+to+": "+why)
			}
		}
		for _, imp := range append(p.TestImports, p.XTestImports...) {
			to, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if why := testImportRule(from, to); why != "" {
				violations = append(violations, "a test of "+from+" imports "+to+": "+why)
			}
		}
	}
	if packages < 10 {
		t.Fatalf("go list found %d packages; want the whole module", packages)
	}
	sort.Strings(violations)
	for _, v := range violations {
		t.Error(v)
	}
}

// TestImportRule checks the rules themselves on imports that must pass and
// imports that must not.
func TestImportRule(t *testing.T) {
	for _, tt := range []struct {
		pkg, dep string
		ok       bool
	}{
		{"shared/postgres", "shared/usage", true},
		{"shared/meter", "shared/httpapi", true},
		{"shared/postgres/pgtest", "shared/postgres", true},
		{"shared/httpapi", "shared/usage", true},
		{"shared/mock", "shared/usage", true},
		{"functions/analytics", "shared/postgres", true},
		{"cmd/devstack", "shared/postgres", true},
		{"shared/usage", "shared/httpapi", false},
		{"shared/limits", "shared/postgres", false},
		{"shared/meter", "shared/auth", false},
		{"shared/mock", "shared/httpapi", false},
		{"shared/stripebill/stripetest", "shared/postgres", false},
		{"shared/sqspub", "functions/record", false},
		{"functions/record", "cmd/devstack", false},
		{"shared/postgres", "migrations", true},
		{"shared/postgres", "shared/notify", true},
		{"shared/webhook", "shared/notify", true},
		{"shared/notify", "shared/usage", true},
		{"shared/notify", "shared/postgres", false},
		{"shared/notify", "shared/httpapi", false},
		{"shared/testkit", "shared/env", true},
		{"shared/testkit", "functions/record", false},
		{"functions/record", "shared/testkit", false},
		{"shared/postgres", "shared/testkit", false},
	} {
		if got := importRule(tt.pkg, tt.dep) == ""; got != tt.ok {
			t.Errorf("importRule(%s, %s) allows = %v; want %v", tt.pkg, tt.dep, got, tt.ok)
		}
	}
	for _, tt := range []struct {
		pkg, dep string
		ok       bool
	}{
		{"shared/billing", "shared/postgres", true},
		{"shared/billing", "shared/stripebill", true},
		{"shared/billing", "shared/postgres/pgtest", true},
		{"shared/record", "shared/postgres", true},
		{"shared/billing", "functions/overage", false},
		{"shared/postgres", "cmd/internal/devstack", false},
		{"functions/overage", "shared/postgres", true},
		{"cmd/internal/e2e/samlocal", "shared/postgres", true},
	} {
		if got := testImportRule(tt.pkg, tt.dep) == ""; got != tt.ok {
			t.Errorf("testImportRule(%s, %s) allows = %v; want %v", tt.pkg, tt.dep, got, tt.ok)
		}
	}
}
