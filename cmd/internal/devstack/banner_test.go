package devstack

import (
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// bannerCommand is a command the banner prints, its continuation lines
// joined.
type bannerCommand struct {
	line string
	// allow are the statuses its comment names, accepted besides 2xx.
	allow []int
	curl  bool
}

var (
	bannerComment = regexp.MustCompile(`\s{2,}#\s.*$`)
	bannerStatus  = regexp.MustCompile(`\b[1-5][0-9][0-9]\b`)
)

// bannerCommands returns the export lines and the commands (curl and the
// AWS CLI) of a banner, as a user would paste them.
func bannerCommands(banner string) (exports []string, cmds []bannerCommand) {
	lines := strings.Split(banner, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if strings.HasPrefix(line, "export ") {
			exports = append(exports, line)
			continue
		}
		isCurl := strings.HasPrefix(line, "curl ")
		if !isCurl && !strings.Contains(line, " aws ") {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		c := bannerCommand{line: line, curl: isCurl}
		if m := bannerComment.FindString(line); m != "" {
			for _, s := range bannerStatus.FindAllString(m, -1) {
				n, _ := strconv.Atoi(s)
				c.allow = append(c.allow, n)
			}
		}
		cmds = append(cmds, c)
	}
	return exports, cmds
}

func TestBannerCommands(t *testing.T) {
	s := testStack(t)
	var b strings.Builder
	s.PrintBanner(&b)
	exports, cmds := bannerCommands(b.String())
	if len(exports) != 4 {
		t.Errorf("%d export lines; want TOKEN, ADMIN_TOKEN, API_KEY, FREE_API_KEY: %q", len(exports), exports)
	}
	var platform, aws int
	for _, c := range cmds {
		switch {
		case strings.Contains(c.line, s.state.PlatformURL):
			platform++
		case !c.curl:
			aws++
		}
	}
	if platform < 6 || aws != 1 || len(cmds) < 15 {
		t.Errorf("%d commands, %d of them of the sample API, %d of the AWS CLI; want at least 15, 6 and 1", len(cmds), platform, aws)
	}
	for _, c := range cmds {
		if strings.Contains(c.line, "/v1/flaky") && !slices.Contains(c.allow, 503) {
			t.Errorf("the flaky route's line does not say it answers 503: %s", c.line)
		}
	}
}

// TestBannerEventsBody runs the banner's POST /v1/events line through
// bash with curl replaced by a function that prints its body: the body
// must be what the route takes, an events array whose event is valid once
// the route sets the caller.
func TestBannerEventsBody(t *testing.T) {
	testkit.RequireTool(t, "bash", "the banner's commands are run with it")
	var b strings.Builder
	testStack(t).PrintBanner(&b)
	_, cmds := bannerCommands(b.String())
	var line string
	for _, c := range cmds {
		if strings.Contains(c.line, "/v1/events") {
			line = c.line
		}
	}
	if line == "" {
		t.Fatal("the banner prints no POST /v1/events line")
	}
	script := `curl() { while [[ $# -gt 0 ]]; do if [[ $1 == -d ]]; then printf '%s' "$2"; return; fi; shift; done; }` + "\n" + line
	out, err := exec.Command("bash", "-c", script).Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	var body struct {
		Events []usage.Event `json:"events"`
	}
	if err := json.Unmarshal(out, &body); err != nil || len(body.Events) != 1 {
		t.Fatalf("body %s: %v; want {\"events\": [one event]}", out, err)
	}
	e := body.Events[0]
	e.UserID = seed.ProUserID
	if err := e.Validate(time.Now(), usage.DefaultBackfillWindow); err != nil {
		t.Errorf("event %s: %v", out, err)
	}
}

// runBannerCommands runs every command of the stack's banner with bash,
// after its export lines, as a user pastes them: each curl line must
// answer 2xx or a status its comment names, the AWS CLI line exit 0.
func runBannerCommands(ctx context.Context, t *testing.T, s *Stack) {
	var b strings.Builder
	s.PrintBanner(&b)
	exports, cmds := bannerCommands(b.String())
	// curl as printed, with the status appended to what it writes.
	prelude := strings.Join(exports, "\n") + "\n" +
		`curl() { command curl -w '\nbanner-status:%{http_code}\n' "$@"; }` + "\n"
	for _, c := range cmds {
		out, err := exec.CommandContext(ctx, "bash", "-c", prelude+c.line).CombinedOutput()
		if err != nil {
			t.Errorf("%s\nexit: %v\n%s", c.line, err, out)
			continue
		}
		if !c.curl {
			continue
		}
		i := strings.LastIndex(string(out), "banner-status:")
		if i < 0 {
			t.Errorf("%s\nno status:\n%s", c.line, out)
			continue
		}
		status, _ := strconv.Atoi(strings.TrimSpace(string(out[i+len("banner-status:"):])))
		if (status < 200 || status > 299) && !slices.Contains(c.allow, status) {
			t.Errorf("%s\nanswered %d; want 2xx%s:\n%s", c.line, status, allowed(c.allow), out)
		}
	}
	if len(cmds) == 0 {
		t.Error("the banner prints no commands")
	}
}

func allowed(s []int) string {
	if len(s) == 0 {
		return ""
	}
	var b strings.Builder
	for _, n := range s {
		b.WriteString(" or " + strconv.Itoa(n))
	}
	return b.String()
}
