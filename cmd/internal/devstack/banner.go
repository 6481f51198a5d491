package devstack

import (
	"fmt"
	"io"
	"net/url"
	"sort"
	"time"

	"github.com/nexus/usage/cmd/internal/platform"
	"github.com/nexus/usage/cmd/internal/seed"
)

// DashboardLink is the link that opens the dashboard signed in with token:
// the token travels in the URL's fragment, which browsers never send, so no
// server or proxy logs it; the page moves it into the tab's storage and
// drops it from the address bar.
func (st *State) DashboardLink(token string) string {
	return st.GatewayURL + "/dashboard#token=" + url.QueryEscape(token)
}

// PrintBanner prints credentials and ready-to-paste commands.
func (s *Stack) PrintBanner(w io.Writer) {
	st := s.State()
	var free, pro seed.User
	for _, u := range st.Users {
		switch u.UserID {
		case seed.FreeUserID:
			free = u
		case seed.ProUserID:
			pro = u
		}
	}
	gw, adm, api := st.GatewayURL, st.AdminURL, st.PlatformURL
	today := time.Now().UTC()
	from := today.AddDate(0, 0, -7).Format("2006-01-02")
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("")
	p("Nexus Usage is running on this machine (ready in %.1fs).", s.ready.Seconds())
	p("")
	names := make([]string, 0, len(st.Functions))
	for n := range st.Functions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p("  function %-10s %s", n, st.Functions[n])
	}
	for _, j := range s.jobs {
		p("  schedule %-10s %s %s", j.Function, j.Spec.Expression, j.Location)
	}
	p("  API        %s", gw)
	p("  platform   %s   (sample API behind shared/meter: GET /v1/games, GET /v1/games/{id}, POST /v1/scores, GET /v1/flaky; GET /metrics unmetered)", api)
	p("  dashboard  open a link in a browser (the token after # stays in the browser, out of every log):")
	p("    %-8s %s", pro.Plan, st.DashboardLink(pro.Token))
	p("    %-8s %s", "admin", st.DashboardLink(st.Admin.Token))
	p("  admin      %s   (GET /state, POST /run/{function}, GET /webhooks)", adm)
	p("  webhooks   %s   (receiver: verifies each signature and prints it; every event type)", st.ReceiverURL)
	p("  database   %s", st.DatabaseURL)
	p("  SQS        %s   queue %s", st.SQSEndpoint, st.QueueURL)
	p("")
	for _, u := range st.Users {
		p("  %-10s user %s  api key %s", u.Plan, u.UserID, u.APIKey)
	}
	p("")
	p("  export TOKEN=%s", pro.Token)
	p("  export ADMIN_TOKEN=%s", st.Admin.Token)
	p("  export API_KEY=%s", pro.APIKey)
	p("  export FREE_API_KEY=%s", free.APIKey)
	p("")
	p("  curl -si -H \"X-Api-Key: $API_KEY\" %s/v1/games", api)
	p("  curl -s -H \"Authorization: Bearer $TOKEN\" %s/v1/games/1", api)
	p("  curl -s -H \"X-Api-Key: $API_KEY\" -H 'Content-Type: application/json' -X POST %s/v1/scores -d '{\"game_id\":1,\"player\":\"ada\",\"score\":4200}'", api)
	p("  curl -s -H \"X-Api-Key: $API_KEY\" %s/v1/flaky      # answers 503 on every %dth call", api, platform.FlakyEvery)
	p("  curl -si -H \"X-Api-Key: $FREE_API_KEY\" %s/v1/games   # 200, or 429 with Retry-After once the free user is over its rate or quota", api)
	p("  curl -s %s/metrics", api)
	p("")
	p("  curl -s -H \"Authorization: Bearer $TOKEN\" %s/v1/usage", gw)
	p("  curl -s -H \"Authorization: Bearer $TOKEN\" '%s/v1/usage/daily?from=%s&to=%s'", gw, from, today.Format("2006-01-02"))
	p("  curl -s -H \"X-Api-Key: $API_KEY\" -H 'Content-Type: application/json' -X POST %s/v1/events \\", gw)
	p("    -d '{\"events\":[{\"event_id\":\"'$(cat /proc/sys/kernel/random/uuid)'\",\"endpoint\":\"GET /v1/games/{id}\",\"method\":\"GET\",\"status_code\":200,\"latency_ms\":12,\"occurred_at\":\"'$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)'\"}]}'")
	p("  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" %s/v1/admin/summary", gw)
	p("  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" %s/v1/admin/top-users", gw)
	p("  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" '%s/v1/admin/overage?period=%s'", gw, st.ClosedPeriod)
	p("  curl -s -X POST %s/run/aggregate      # or: make run-aggregate", adm)
	p("  curl -s -X POST %s/run/overage        # or: make run-overage", adm)
	p("  curl -s %s/webhooks                   # what the webhook receiver got", adm)
	p("  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" %s/v1/admin/webhooks/deliveries", gw)
	p("")
	p("  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test aws --region %s --endpoint-url %s sqs send-message \\", st.Region, st.SQSEndpoint)
	p("    --queue-url %s --message-body \"{\\\"v\\\":1,\\\"event_id\\\":\\\"$(cat /proc/sys/kernel/random/uuid)\\\",\\\"user_id\\\":\\\"%s\\\",\\\"endpoint\\\":\\\"GET /v1/games\\\",\\\"method\\\":\\\"GET\\\",\\\"status_code\\\":200,\\\"occurred_at\\\":\\\"$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)\\\"}\"", st.QueueURL, free.UserID)
	p("")
	p("  make demo     sends a minute's worth of traffic through the sample API (and late, duplicate and invalid events")
	p("                through the queue) and prints what it saw; make lag measures the lag to GET /v1/usage;")
	p("                make smoke drives the whole flow.")
	p("  Ctrl-C stops everything.")
	p("")
}
