package devstack

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nexus/usage/cmd/internal/seed"
)

// testStack is a stack that started nothing: its state is set by hand.
func testStack(t *testing.T) *Stack {
	t.Helper()
	s := newStack(Config{}.withDefaults(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(s.Stop)
	s.state.GatewayURL, s.state.AdminURL, s.state.PlatformURL = "http://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1:8090"
	s.state.Functions["record"] = "running"
	s.state.Functions["overage"] = "build failed"
	s.state.Users = []seed.User{{UserID: seed.FreeUserID, Plan: "free", APIKey: "nx_free"}, {UserID: seed.ProUserID, Plan: "pro", APIKey: "nx_pro", Token: "pro-token"}}
	s.state.Admin = seed.User{UserID: seed.AdminUserID, Plan: "admin", Token: "admin-token"}
	return s
}

func TestAdminEndpoint(t *testing.T) {
	s := testStack(t)
	srv := httptest.NewServer(s.adminHandler())
	defer srv.Close()

	st, err := FetchState(t.Context(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if st.GatewayURL != s.state.GatewayURL || st.Admin.Token != "admin-token" || len(st.Users) != 2 ||
		st.Functions["overage"] != "build failed" || st.JWTIssuer != seed.JWTIssuer {
		t.Errorf("GET /state = %+v", st)
	}

	tests := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/healthz", "", 200, "ok"},
		{"POST", "/run/overage", "not json", 400, "JSON input"},
		{"POST", "/run/overage", "", 503, "function overage is not running (build failed)"},
		{"POST", "/run/nothing", `{}`, 503, "function nothing is not running"},
		{"GET", "/run/overage", "", 405, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) {
			t.Errorf("%s %s: %d %q; want %d %q", tt.method, tt.path, resp.StatusCode, b, tt.status, tt.want)
		}
	}
}

func TestStateJSON(t *testing.T) {
	// scripts/smoke.sh and make demo read these names.
	b, err := json.Marshal(testStack(t).State())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"gateway_url", "admin_url", "database_url", "sqs_endpoint", "region", "queue_url", "dlq_url",
		"jwt_issuer", "jwt_audience", "functions", "users", "admin", "closed_period", "api_key", "token", "period_start",
		"platform_url", "batch_window_seconds", "platform_flush_seconds"} {
		if !bytes.Contains(b, []byte(`"`+k+`"`)) {
			t.Errorf("State's JSON has no %q: %s", k, b)
		}
	}
}

func TestBanner(t *testing.T) {
	var b strings.Builder
	testStack(t).PrintBanner(&b)
	for _, want := range []string{
		"Nexus Usage is running on this machine (ready in ",
		"  function overage    build failed\n",
		"  function record     running\n",
		"  API        http://127.0.0.1:8080\n",
		"    pro      http://127.0.0.1:8080/dashboard#token=pro-token\n",
		"    admin    http://127.0.0.1:8080/dashboard#token=admin-token\n",
		"  admin      http://127.0.0.1:8081   (GET /state, POST /run/{function}, GET /webhooks)\n",
		"  platform   http://127.0.0.1:8090   (sample API behind shared/meter: GET /v1/games, GET /v1/games/{id}, POST /v1/scores, GET /v1/flaky; GET /metrics unmetered)\n",
		"  export FREE_API_KEY=nx_free\n",
		"  curl -si -H \"X-Api-Key: $API_KEY\" http://127.0.0.1:8090/v1/games\n",
		"  export TOKEN=pro-token\n",
		"  export ADMIN_TOKEN=admin-token\n",
		"  export API_KEY=nx_pro\n",
		"  Ctrl-C stops everything.\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("banner has no %q:\n%s", want, b.String())
		}
	}
}
