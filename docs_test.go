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
