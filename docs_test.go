// Tests of the documentation: what it names exists.
package usage_test

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/nexus/usage/shared/samtemplate"
	"gopkg.in/yaml.v3"
)

// TestConfigurationIsDocumented fails when template.yaml gives a function an
// environment variable that docs/configuration.md's table does not list for
// that function (by its name or as "all"). What the template gives is what
// each function's configuration reads (TestConfigurationIsTheTemplates in
// functions/*), so every setting a function reads has its row.
func TestConfigurationIsDocumented(t *testing.T) {
	tmpl, err := samtemplate.Load("template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	usedBy := configTable(string(b))
	if len(usedBy) == 0 {
		t.Fatal("docs/configuration.md has no table of variables (| `NAME` | used by | meaning |)")
	}
	for _, fn := range tmpl.Functions {
		names := make([]string, 0, len(fn.Env))
		for name := range fn.Env {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			users, ok := usedBy[name]
			switch {
			case !ok:
				t.Errorf("template.yaml gives %s %s, which docs/configuration.md's table does not list", fn.LogicalID, name)
			case !users["all"] && !users[fn.Name]:
				t.Errorf("template.yaml gives %s %s, but docs/configuration.md lists it for %s only", fn.LogicalID, name, strings.Join(keys(users), ", "))
			}
		}
	}
}

// configTable reads the rows of a markdown table whose first cell names
// variables in backticks and whose second says which functions use them:
// variable → the set of words of its "used by" cell.
func configTable(doc string) map[string]map[string]bool {
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]*)`")
	word := regexp.MustCompile(`[a-z]+`)
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(doc, "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| `") || len(cells) < 4 {
			continue
		}
		users := map[string]bool{}
		for _, w := range word.FindAllString(cells[2], -1) {
			users[w] = true
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			out[m[1]] = users
		}
	}
	return out
}

// TestAlarmsNotify fails when an alarm of template.yaml can be deployed
// without an action: whatever the parameters, every alarm notifies a
// topic (AlarmTopicArn's or the stack's own AlarmTopic).
func TestAlarmsNotify(t *testing.T) {
	tmpl, err := samtemplate.Load("template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range slices.Sorted(maps.Keys(tmpl.Alarms)) {
		if !tmpl.Alarms[id].Actions {
			t.Errorf("template.yaml's %s notifies no one with some parameters: its AlarmActions must be a list", id)
		}
	}
}

// TestAlarmsAreDocumented fails when template.yaml has an alarm that
// docs/operations.md's table of alarms does not name (its logical id
// without "Alarm", in backticks): what an operator is told to do when it
// fires.
func TestAlarmsAreDocumented(t *testing.T) {
	tmpl, err := samtemplate.Load("template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(tmpl.Alarms) == 0 {
		t.Fatal("template.yaml has no alarms")
	}
	named := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if cells := strings.Split(line, "|"); strings.HasPrefix(line, "| `") && len(cells) > 2 {
			for _, m := range regexp.MustCompile("`([A-Za-z]+)`").FindAllStringSubmatch(cells[1], -1) {
				named[m[1]] = true
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(tmpl.Alarms)) {
		if !named[strings.TrimSuffix(id, "Alarm")] {
			t.Errorf("template.yaml's %s is not in docs/operations.md's table of alarms", id)
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestDocLinks fails when a relative link of a markdown file of the
// repository names a file that does not exist, or a #section that the file
// it points to does not have (GitHub's heading anchors).
func TestDocLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	docs := docFiles(t)
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		anchors[path] = headingAnchors(string(b))
		return anchors[path]
	}
	checked := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(withoutCode(string(b)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s links to %s, which does not exist", doc, target)
					continue
				}
			}
			checked++
			if anchor == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			if !anchorsOf(path)[anchor] {
				t.Errorf("%s links to %s: %s has no section #%s", doc, target, path, anchor)
			}
		}
	}
	if checked == 0 {
		t.Error("no relative links found in the markdown files")
	}
}

// withoutCode drops fenced code blocks, whose text is not markdown.
func withoutCode(doc string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			in = !in
			continue
		}
		if !in {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// headingAnchors returns the anchors GitHub gives a document's headings:
// lower case, spaces as hyphens, punctuation dropped, repeats numbered.
func headingAnchors(doc string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range strings.Split(withoutCode(doc), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[a+"-"+strconv.Itoa(n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// docFiles returns the markdown files of the repository (not those of
// installed packages or build output).
func docFiles(t *testing.T) []string {
	t.Helper()
	var docs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", ".git", "bin", "dist", ".next", ".aws-sam":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".md") {
			docs = append(docs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestMakeTargetsExist fails when a markdown file tells its reader to run
// `make <target>` (in a code span, or a line of a code block that starts
// with make) and the Makefile has no such target.
func TestMakeTargetsExist(t *testing.T) {
	b, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	rule := regexp.MustCompile(`^([A-Za-z0-9_.-]+(?: [A-Za-z0-9_.-]+)*)\s*:([^=]|$)`)
	for _, line := range strings.Split(string(b), "\n") {
		if m := rule.FindStringSubmatch(line); m != nil {
			for _, name := range strings.Fields(m[1]) {
				targets[name] = true
			}
		}
	}
	if !targets["dev"] {
		t.Fatal("found no targets in the Makefile (not even dev)")
	}
	span := regexp.MustCompile("`make ([a-z][a-z0-9-]*)")
	block := regexp.MustCompile(`^\s*(?:\$ )?make ([a-z][a-z0-9-]*)`)
	checked := 0
	for _, doc := range docFiles(t) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		in := false
		for n, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				in = !in
				continue
			}
			var names []string
			for _, m := range span.FindAllStringSubmatch(line, -1) {
				names = append(names, m[1])
			}
			if m := block.FindStringSubmatch(line); in && m != nil && !strings.HasPrefix(line[len(m[0]):], ":") {
				names = append(names, m[1])
			}
			for _, name := range names {
				checked++
				if !targets[name] {
					t.Errorf("%s:%d names make %s, which the Makefile does not have", doc, n+1, name)
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no make commands found in the markdown files")
	}
}

// apiPath matches a path of the HTTP API as the docs write it: a route's
// path, its {parameters} included, with an optional method before it.
var apiPath = regexp.MustCompile(`(?:\b(GET|POST|PUT|PATCH|DELETE) )?(/v1/(?:usage|admin|events|limits|notify|webhooks)(?:/[A-Za-z0-9_{}-]+)*|/dashboard(?:/\{asset\})?)`)

// TestRoutesExist fails when a markdown file names a path of the HTTP API
// (under /v1/usage, /v1/admin, /v1/events, /v1/limits, /v1/notify,
// /v1/webhooks, or /dashboard) that template.yaml does not route, or names
// it with a method the template does not route it for.
func TestRoutesExist(t *testing.T) {
	tmpl, err := samtemplate.Load("template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]map[string]bool{} // path → methods
	for _, fn := range tmpl.Functions {
		for _, r := range fn.Routes {
			if methods[r.Path] == nil {
				methods[r.Path] = map[string]bool{}
			}
			methods[r.Path][r.Method] = true
		}
	}
	if len(methods) == 0 {
		t.Fatal("template.yaml has no routes")
	}
	checked := 0
	for _, doc := range docFiles(t) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(b), "\n") {
			for _, m := range apiPath.FindAllStringSubmatch(line, -1) {
				method, path := m[1], m[2]
				checked++
				switch {
				case methods[path] == nil:
					t.Errorf("%s:%d names %s, which template.yaml does not route", doc, n+1, path)
				case method != "" && !methods[path][method] && !methods[path]["ANY"]:
					t.Errorf("%s:%d names %s %s, but template.yaml routes %s for %s only", doc, n+1, method, path, path, strings.Join(keys(methods[path]), ", "))
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no routes found in the markdown files")
	}
}

// TestDeployNamesTheParameters fails when docs/deploy.md does not name (in
// backticks) a parameter of template.yaml, so that the page a first deploy
// follows lists everything `sam deploy --guided` asks for, and when a
// markdown file names as "the `X` output" an output the template does not
// have.
func TestDeployNamesTheParameters(t *testing.T) {
	b, err := os.ReadFile("template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Parameters map[string]yaml.Node `yaml:"Parameters"`
		Outputs    map[string]yaml.Node `yaml:"Outputs"`
	}
	if err := yaml.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	if len(tmpl.Parameters) == 0 || len(tmpl.Outputs) == 0 {
		t.Fatal("template.yaml has no parameters or no outputs")
	}
	deploy, err := os.ReadFile("docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(tmpl.Parameters)) {
		if !strings.Contains(string(deploy), "`"+name+"`") {
			t.Errorf("docs/deploy.md does not name template.yaml's parameter %s", name)
		}
	}
	output := regexp.MustCompile("`([A-Za-z0-9]+)`\\)? outputs?\\b")
	for _, doc := range docFiles(t) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(b), "\n") {
			for _, m := range output.FindAllStringSubmatch(line, -1) {
				if _, ok := tmpl.Outputs[m[1]]; !ok {
					t.Errorf("%s:%d names the output %s, which template.yaml does not have", doc, n+1, m[1])
				}
			}
		}
	}
}

// TestDocumentedVariablesAreRead fails when docs/configuration.md's table
// lists a variable that no function or shared package reads (a string
// literal of its name in their non-test Go files): a setting renamed or
// dropped in the code and left in the table. The AWS SDK's own variables are
// read by the SDK.
func TestDocumentedVariablesAreRead(t *testing.T) {
	b, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := configTable(string(b))
	if len(documented) == 0 {
		t.Fatal("docs/configuration.md has no table of variables (| `NAME` | used by | meaning |)")
	}
	sdk := map[string]bool{"AWS_ENDPOINT_URL": true, "AWS_ENDPOINT_URL_SQS": true}
	literal := regexp.MustCompile(`"([A-Z][A-Z0-9_]*)"`)
	read := map[string]bool{}
	for _, dir := range []string{"functions", "shared"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
				read[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(documented)) {
		if !read[name] && !sdk[name] {
			t.Errorf("docs/configuration.md lists %s, which no function reads", name)
		}
	}
}
