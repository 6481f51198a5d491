package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/cmd/internal/e2e/browser"
	"github.com/nexus/usage/cmd/internal/seed"
)

// The page's messages (web/src/api.js).
const (
	expiredText   = "Your session has expired or the token is not valid — sign in again"
	forbiddenText = "This needs an admin account"
)

// testPlanChange: an admin reaches the admin tab from the keyboard, sees
// the system totals the API gives, opens a user from the top users,
// changes the user's plan and sees the change in the audit trail, as the
// API records it.
func testPlanChange(t *testing.T, s *stack, b *browser.Browser) {
	admin := s.Admin.Token
	p := open(t, b, s.DashboardLink(admin), `[data-testid=usage-tab]`)
	p.do("select the admin tab with the keyboard", chromedp.Focus(chromedp.CSS(`[data-testid=usage-tab]`)), chromedp.KeyEvent(kb.ArrowRight))
	p.waitFor("the admin overview", `document.activeElement === document.querySelector('[data-testid=admin-tab]') && `+
		`document.activeElement.getAttribute('aria-selected') === 'true' && `+ready(`[data-testid=top-users] tbody tr button`))
	var overview struct {
		Calls int64  `json:"calls"`
		From  string `json:"from"`
		To    string `json:"to"`
	}
	p.eval(`({calls: Number(document.querySelector('[data-testid=admin-calls] [data-value]').dataset.value),
		from: document.querySelector('[data-testid=range-from]').value, to: document.querySelector('[data-testid=range-to]').value})`, &overview)
	var summary struct{ Calls int64 }
	if status := s.api(p.ctx, t, fmt.Sprintf("/v1/admin/summary?from=%s&to=%s", overview.From, overview.To), admin, &summary); status != 200 || summary.Calls != overview.Calls || summary.Calls == 0 {
		t.Errorf("the overview shows %d calls; the API says %d (status %d)", overview.Calls, summary.Calls, status)
	}
	p.screenshot("dashboard-admin.png")

	user := seed.FreeUserID
	p.do("open the user from the top users", chromedp.Click(chromedp.CSS(`[data-testid=top-users] button[aria-label="Open the view of user `+user+`"]`)))
	p.waitFor("the user's support view", ready(`[data-testid=audit-trail]`)+` && !!document.querySelector('`+dailyRows+`')`)
	var v usageView
	p.eval(usageViewJS, &v)
	var u usageAnswer
	s.api(p.ctx, t, "/v1/admin/users/"+user+"/usage", admin, &u)
	if v.Plan != u.PlanName || v.Used != u.Used || v.Used == 0 {
		t.Errorf("the support view shows plan %q, %d used; the API says %q, %d", v.Plan, v.Used, u.PlanName, u.Used)
	}
	if want := daysOf(t, s, p, "/v1/admin/users/"+user+"/daily", admin, v.From, v.To); fmt.Sprint(v.Days) != fmt.Sprint(want) {
		t.Errorf("the support view's days:\n%v\nthe API:\n%v", v.Days, want)
	}
	var rows int
	p.eval(`document.querySelectorAll('[data-testid=audit-trail] tr[data-audit-id]').length`, &rows)
	if rows != 0 {
		t.Fatalf("the audit trail shows %d changes before any", rows)
	}

	p.setField(`[data-testid=plan-select]`, "enterprise")
	p.do("save the plan", chromedp.Click(chromedp.CSS(`[data-testid=plan-submit]`)))
	p.waitFor("the change in the audit trail", ready(`[data-testid=plan-result]`)+
		` && !!document.querySelector('[data-testid=audit-trail] tr[data-audit-id]')`)
	var row struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	p.eval(`(() => { const tr = document.querySelector('[data-testid=audit-trail] tr[data-audit-id]');
		return {id: tr.dataset.auditId, text: tr.textContent}; })()`, &row)
	var audit struct {
		Items []struct {
			ID  int64  `json:"id"`
			Who string `json:"who"`
			Old struct {
				PlanID string `json:"plan_id"`
			} `json:"old"`
			New struct {
				PlanID string `json:"plan_id"`
			} `json:"new"`
		} `json:"items"`
	}
	if status := s.api(p.ctx, t, "/v1/admin/users/"+user+"/audit", admin, &audit); status != 200 || len(audit.Items) != 1 {
		t.Fatalf("GET the audit trail: %d, %+v", status, audit)
	}
	a := audit.Items[0]
	if row.ID != fmt.Sprint(a.ID) || a.Who != seed.AdminUserID || a.Old.PlanID != "free" || a.New.PlanID != "enterprise" {
		t.Errorf("the page's audit row %s; the API's newest change %+v", row.ID, a)
	}
	if !strings.Contains(row.Text, "plan_id: free → enterprise") || !strings.Contains(row.Text, seed.AdminUserID[:8]) {
		t.Errorf("the audit row reads %q; want who and plan_id: free → enterprise", row.Text)
	}
	// The support view reads the summary again: the user is on the new plan.
	s.api(p.ctx, t, "/v1/admin/users/"+user+"/usage", admin, &u)
	p.waitFor("the new plan in the summary", `document.querySelector('[data-testid=plan-name]').textContent === `+jsString(u.PlanName))
	p.checkPolicy(s.GatewayURL)
	p.screenshot("dashboard-support.png")
}

// testLedgerRetry: a failed ledger row (written here: the demo's Stripe
// does not fail) shows in the admin's ledger with a Retry button; the
// click makes it pending again, as the API then lists it, and the button
// goes.
func testLedgerRetry(t *testing.T, s *stack, b *browser.Browser) {
	const id = "44444444-0000-4000-8000-000000000001"
	conn, err := pgx.Connect(t.Context(), s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end, seq,
			included_calls, used_calls, units, unit_size, unit_price, amount, currency, idempotency_key, status, attempts, last_error)
		VALUES ($1, $2, '2020-05-01', '2020-06-01', 0, 500, 2500, 2, 1000, 50, 100, 'usd', 'nexus-overage-browser-test', 'failed', 5, 'card declined')`,
		id, seed.EnterpriseUserID); err != nil {
		t.Fatal(err)
	}
	admin := s.Admin.Token
	p := open(t, b, s.DashboardLink(admin), `[data-testid=admin-tab]`)
	p.do("open the admin tab", chromedp.Click(chromedp.CSS(`[data-testid=admin-tab]`)))
	p.waitFor("the admin overview", ready(`[data-testid=admin-summary]`))
	p.do("open the ledger", chromedp.Click(chromedp.CSS(`#tab-ledger`)))
	p.waitFor("the ledger form", `!!document.querySelector('input[type=month]')`)
	p.setField(`input[type=month]`, "2020-05")
	p.do("show May 2020", chromedp.Click(chromedp.CSS(`form.section-head button[type=submit]`)))
	row := `[data-testid=ledger-table] tr[data-ledger-id="` + id + `"]`
	retry := row + ` button[aria-label="Retry billing row ` + id + `"]`
	p.waitFor("the failed row", ready(row+`[data-status=failed]`)+` && !!document.querySelector('`+retry+`')`)
	var text string
	p.eval(`document.querySelector('`+row+`').textContent`, &text)
	if !strings.Contains(text, "card declined") || !strings.Contains(text, "$1.00") {
		t.Errorf("the failed row reads %q; want its error and amount", text)
	}
	p.do("retry the row", chromedp.Click(chromedp.CSS(retry)))
	p.waitFor("the row pending again", ready(row+`[data-status=pending]`)+` && !document.querySelector('`+retry+`')`)
	var list struct {
		Items []struct {
			ID       string `json:"id"`
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
			Retries  int    `json:"retries"`
		} `json:"items"`
	}
	if status := s.api(p.ctx, t, "/v1/admin/overage?period=2020-05", admin, &list); status != 200 || len(list.Items) != 1 ||
		list.Items[0].ID != id || list.Items[0].Status != "pending" || list.Items[0].Attempts != 0 || list.Items[0].Retries != 1 {
		t.Errorf("after the retry the API lists %+v (status %d); want the row pending, attempts 0, retried once", list.Items, status)
	}
	p.checkPolicy(s.GatewayURL)
}

// testNonAdmin: a user's page has no admin tab and asks for no admin data;
// the admin routes refuse the user's token; and when the API refuses an
// admin view (the stored token is a user's), the page says so and shows
// no data.
func testNonAdmin(t *testing.T, s *stack, b *browser.Browser) {
	p := open(t, b, s.DashboardLink(s.pro.Token), dailyRows)
	var seen struct {
		AdminTab  bool `json:"adminTab"`
		AdminText bool `json:"adminText"`
	}
	p.eval(`({adminTab: !!document.querySelector('[data-testid=admin-tab], #tab-admin'),
		adminText: document.body.textContent.includes('System totals')})`, &seen)
	asked, _ := p.requested(s.GatewayURL, "/v1/admin/")
	if all, _ := p.requested(s.GatewayURL, "/v1/"); seen.AdminTab || seen.AdminText || len(asked) > 0 || len(all) == 0 {
		t.Errorf("a user's page shows the admin tab %v, admin text %v, asked for %q of %q", seen.AdminTab, seen.AdminText, asked, all)
	}
	var answers []struct {
		URL    string          `json:"url"`
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	}
	p.eval(`Promise.all(['/v1/admin/summary', '/v1/admin/top-users', '/v1/admin/rejected', '/v1/admin/users/`+seed.EnterpriseUserID+`/daily',
		'/v1/admin/users/`+seed.EnterpriseUserID+`/audit'].map(async (url) => {
		const r = await fetch(url, {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('nexus-usage-token')}});
		return {url, status: r.status, body: await r.json()};
	}))`, &answers)
	for _, a := range answers {
		var pr struct{ Type string }
		_ = json.Unmarshal(a.Body, &pr)
		if a.Status != 403 || pr.Type != "urn:nexus:problem:forbidden" {
			t.Errorf("GET %s with a user's token from the page: %d %s; want 403 forbidden", a.URL, a.Status, a.Body)
		}
	}
	p.checkPolicy(s.GatewayURL)

	// An admin's page whose token is now a user's: the API decides.
	q := open(t, b, s.DashboardLink(s.Admin.Token), `[data-testid=admin-tab]`)
	q.do("open the admin tab", chromedp.Click(chromedp.CSS(`[data-testid=admin-tab]`)))
	q.waitFor("the admin overview", ready(`[data-testid=admin-summary]`))
	var stored bool
	q.eval(`(sessionStorage.setItem('nexus-usage-token', `+jsString(s.pro.Token)+`), true)`, &stored)
	q.do("open the quarantine", chromedp.Click(chromedp.CSS(`#tab-rejected`)))
	q.waitFor("the refusal", `document.body.dataset.state === 'error' && [...document.querySelectorAll('[data-testid=error-message]')].some((e) => e.textContent.includes(`+jsString(forbiddenText)+`))`)
	q.do("back to the overview", chromedp.Click(chromedp.CSS(`#tab-overview`)))
	q.waitFor("the refusals of the summary and the top users", `document.body.dataset.state === 'error' && `+
		`[...document.querySelectorAll('[data-testid=error-message]')].filter((e) => e.textContent.includes(`+jsString(forbiddenText)+`)).length === 2`)
	var shown struct {
		Rows    int  `json:"rows"`
		Summary bool `json:"summary"`
		Top     bool `json:"top"`
	}
	q.eval(`({rows: document.querySelectorAll('[data-testid=rejected-table] td[data-col]').length,
		summary: !!document.querySelector('[data-testid=admin-summary]'), top: !!document.querySelector('[data-testid=top-users]')})`, &shown)
	if shown.Rows > 0 || shown.Summary || shown.Top {
		t.Errorf("refused admin views show data: %+v", shown)
	}
}

// testExpiredToken: a link with an expired token brings the sign-in panel
// with a message, not a blank page, and the page calls no API with it.
func testExpiredToken(t *testing.T, s *stack, b *browser.Browser) {
	expired := sign(t, "", seed.ProUserID, false, time.Now().Add(-2*time.Hour), time.Hour)
	p := openTab(t, b)
	p.do("open the dashboard", chromedp.Navigate(s.DashboardLink(expired)))
	p.waitFor("the sign-in panel", `!!document.querySelector('[data-testid=signin] [data-testid=error-message]')`)
	checkSignIn(t, s, p, false)
}

// testRefusedToken: a token that looks valid to the page but that the API
// refuses (another issuer's signature) brings the same sign-in panel once
// the first call answers 401.
func testRefusedToken(t *testing.T, s *stack, b *browser.Browser) {
	forged := sign(t, "a-secret-that-is-not-the-stack-s-0123456789", seed.ProUserID, true, time.Now(), time.Hour)
	if status := s.api(t.Context(), t, "/v1/usage", forged, nil); status != 401 {
		t.Fatalf("the API answers %d to the forged token; want 401", status)
	}
	p := openTab(t, b)
	p.do("open the dashboard", chromedp.Navigate(s.DashboardLink(forged)))
	p.waitFor("the sign-in panel", `!!document.querySelector('[data-testid=signin] [data-testid=error-message]')`)
	checkSignIn(t, s, p, true)
}

// checkSignIn checks the sign-in panel: the message, the page's error
// state, the token gone from the address bar and, unless called is true,
// no call to the API.
func checkSignIn(t *testing.T, s *stack, p *tab, called bool) {
	t.Helper()
	var v struct {
		State   string `json:"state"`
		Message string `json:"message"`
		Heading string `json:"heading"`
		Hash    string `json:"hash"`
		Stored  bool   `json:"stored"`
	}
	p.eval(`({state: document.body.dataset.state, message: document.querySelector('[data-testid=error-message]').textContent,
		heading: document.querySelector('[data-testid=signin] h1').textContent, hash: location.hash,
		stored: sessionStorage.getItem('nexus-usage-token') !== null})`, &v)
	if v.State != "error" || v.Message != expiredText || v.Heading != "Sign in to Nexus Usage" || v.Hash != "" || v.Stored {
		t.Errorf("sign-in panel: %+v; want state error, %q, the token out of the address bar and the storage", v, expiredText)
	}
	if calls, _ := p.requested(s.GatewayURL, "/v1/"); called != (len(calls) > 0) {
		t.Errorf("API calls %q; want some: %v", calls, called)
	}
	p.checkPolicy(s.GatewayURL)
}
