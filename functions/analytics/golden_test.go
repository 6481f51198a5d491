package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the responses")

// TestGolden serves every API Gateway v2 event of testdata/*.json on the
// mocks and compares the response (status, headers, body) with
// testdata/<name>.golden; go test -run TestGolden -update rewrites them.
// In the fixtures, $USER_JWT, $ADMIN_JWT and $API_KEY stand for alice's
// token, the operator's and alice's API key.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no request fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			raw = []byte(strings.NewReplacer("$USER_JWT", strings.TrimPrefix(token(t, alice, false), "Bearer "),
				"$ADMIN_JWT", strings.TrimPrefix(token(t, operator, true), "Bearer "), "$API_KEY", f.aliceKey).Replace(string(raw)))
			var req events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(raw, &req); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			got := render(t, f.do(t, req))
			golden := "testdata/" + name + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("response differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// render writes a response as the golden files hold it: the status, the
// headers in order, a blank line and the body (JSON indented).
func render(t *testing.T, resp events.APIGatewayV2HTTPResponse) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n", resp.StatusCode)
	keys := make([]string, 0, len(resp.Headers))
	for k := range resp.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, resp.Headers[k])
	}
	b.WriteString("\n")
	if strings.Contains(resp.Headers["Content-Type"], "json") {
		if err := json.Indent(&b, []byte(resp.Body), "", "  "); err != nil {
			t.Fatalf("body is not JSON: %v", err)
		}
		b.WriteString("\n")
	} else {
		b.WriteString(resp.Body)
	}
	return b.Bytes()
}
