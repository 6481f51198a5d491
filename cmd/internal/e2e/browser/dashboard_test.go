package browser_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/nexus/usage/cmd/internal/e2e/browser"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/auth"
)

// TestDashboard drives the dashboard in headless Chromium against a local
// stack after the demo's traffic, as a person would use it: through links
// with a token, clicks and the keyboard. Every wait is on the page's state
// (body[data-state]) or its elements; each test has one overall bound.
// With NEXUS_SCREENSHOTS=docs it writes the screenshots of docs/.
func TestDashboard(t *testing.T) {
	chromium := requireChromium(t)
	s := startStack(t)
	b, err := browser.Start(chromium, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	t.Run("UserSeesTheAPIsNumbers", func(t *testing.T) { testUserNumbers(t, s, b) })
	t.Run("RangeChangeRedraws", func(t *testing.T) { testRangeChange(t, s, b) })
	t.Run("NonAdminSeesNoAdminData", func(t *testing.T) { testNonAdmin(t, s, b) })
	t.Run("AdminChangesPlanAndSeesAudit", func(t *testing.T) { testPlanChange(t, s, b) })
	t.Run("AdminRetriesFailedLedgerRow", func(t *testing.T) { testLedgerRetry(t, s, b) })
	t.Run("AlertsRulesEndpointsReplay", func(t *testing.T) { testAlerts(t, s, b) })
	t.Run("ExpiredToken", func(t *testing.T) { testExpiredToken(t, s, b) })
	t.Run("TokenRefusedByTheAPI", func(t *testing.T) { testRefusedToken(t, s, b) })
}

// usageView is what the usage view shows: the summary's figures (raw in
// data-value, and as text) and the daily table's rows.
type usageView struct {
	Plan         string `json:"plan"`
	Used         int64  `json:"used"`
	UsedText     string `json:"usedText"`
	Included     int64  `json:"included"`
	IncludedText string `json:"includedText"`
	Overage      string `json:"overage"`
	Projected    string `json:"projected"`
	Bills        []bill `json:"bills"`
	Rate         string `json:"rate"`
	From         string `json:"from"`
	To           string `json:"to"`
	Chart        string `json:"chart"`
	Days         []day  `json:"days"`
	AdminTab     bool   `json:"adminTab"`
}

// bill is a row of the page's bills table.
type bill struct {
	Start  string `json:"start"`
	Status string `json:"status"`
	Text   string `json:"text"`
}

type day struct {
	Day       string `json:"day"`
	Calls     int64  `json:"calls"`
	Errors4xx int64  `json:"errors_4xx"`
	Errors5xx int64  `json:"errors_5xx"`
}

const usageViewJS = `(() => {
	const q = (id) => document.querySelector('[data-testid="' + id + '"]');
	const cell = (tr, col) => Number(tr.querySelector('[data-col="' + col + '"]').dataset.value);
	return {
		plan: q('plan-name').textContent,
		used: Number(q('quota-used').dataset.value), usedText: q('quota-used').textContent,
		included: Number(q('quota-included').dataset.value), includedText: q('quota-included').textContent,
		overage: q('overage-to-date').textContent, projected: q('overage-projected').textContent,
		bills: q('bills-table') && [...q('bills-table').querySelectorAll('tbody tr[data-period-start]')].map((tr) => ({
			start: tr.dataset.periodStart, status: tr.dataset.status, text: tr.textContent})),
		rate: q('rate-limit').textContent,
		from: q('range-from').value, to: q('range-to').value,
		chart: document.querySelector('.chart[role=img]').getAttribute('aria-label'),
		days: [...q('daily-table').querySelectorAll('tbody tr[data-day]')].map((tr) => ({day: tr.dataset.day,
			calls: cell(tr, 'calls'), errors_4xx: cell(tr, 'errors_4xx'), errors_5xx: cell(tr, 'errors_5xx')})),
		adminTab: !!q('admin-tab'),
	};
})()`

// usageAnswer is what GET /v1/usage answers, as far as the page shows it.
type usageAnswer struct {
	PlanName  string   `json:"plan_name"`
	Included  int64    `json:"included"`
	Used      int64    `json:"used"`
	ToDate    charge   `json:"overage_to_date"`
	Projected charge   `json:"projected"`
	Billed    []billed `json:"billed"`
	RateLimit struct {
		RatePerSecond float64 `json:"rate_per_second"`
		Burst         int64   `json:"burst"`
	} `json:"rate_limit"`
}

type charge struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// billed is an earlier period's bill as GET /v1/usage lists it.
type billed struct {
	Period struct {
		Start string `json:"start"`
	} `json:"period"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

// daysOf reads the days of a range from the API, newest first as the
// page's table lists them.
func daysOf(t *testing.T, s *stack, p *tab, path, token, from, to string) []day {
	t.Helper()
	var a struct{ Days []day }
	if status := s.api(p.ctx, t, fmt.Sprintf("%s?from=%s&to=%s", path, from, to), token, &a); status != 200 {
		t.Fatalf("GET %s: %d", path, status)
	}
	slices.Reverse(a.Days)
	return a.Days
}

// open loads a link in a new tab and waits until the page is ready with
// the element sel shown.
func open(t *testing.T, b *browser.Browser, link, sel string) *tab {
	t.Helper()
	p := openTab(t, b)
	p.do("open the dashboard", chromedp.Navigate(link))
	p.waitFor(sel, ready(sel))
	return p
}

const dailyRows = `[data-testid=daily-table] tbody tr[data-day]`

func testUserNumbers(t *testing.T, s *stack, b *browser.Browser) {
	p := open(t, b, s.DashboardLink(s.pro.Token), dailyRows)
	var v usageView
	p.eval(usageViewJS, &v)
	var u usageAnswer
	if status := s.api(p.ctx, t, "/v1/usage", s.pro.Token, &u); status != 200 {
		t.Fatalf("GET /v1/usage: %d", status)
	}
	if v.Used == 0 {
		t.Fatal("the page shows no calls used after the demo traffic")
	}
	for _, c := range []struct{ what, page, api string }{
		{"plan", v.Plan, u.PlanName},
		{"used", fmt.Sprint(v.Used), fmt.Sprint(u.Used)},
		{"used as text", v.UsedText, thousands(u.Used)},
		{"included", fmt.Sprint(v.Included), fmt.Sprint(u.Included)},
		{"included as text", v.IncludedText, thousands(u.Included)},
		{"overage to date", v.Overage, money(u.ToDate.Amount, u.ToDate.Currency)},
		{"projected overage", v.Projected, money(u.Projected.Amount, u.Projected.Currency)},
		{"rate limit", v.Rate, fmt.Sprintf("%s calls/s, burst %s", decimal(u.RateLimit.RatePerSecond), thousands(u.RateLimit.Burst))},
	} {
		if c.page != c.api {
			t.Errorf("%s: the page shows %q, the API says %q", c.what, c.page, c.api)
		}
	}
	// The bills of earlier periods, newest first on the page as in the API.
	var want []bill
	for _, b := range u.Billed {
		want = append(want, bill{Start: b.Period.Start, Status: b.Status, Text: money(b.Amount, b.Currency)})
	}
	if len(v.Bills) != len(want) {
		t.Errorf("the bills table holds %v; the API lists %v", v.Bills, want)
	}
	for i := range min(len(v.Bills), len(want)) {
		if g := v.Bills[i]; g.Start != want[i].Start || g.Status != want[i].Status || !strings.Contains(g.Text, want[i].Text) {
			t.Errorf("bill %d: the page shows %+v; the API says %+v", i, g, want[i])
		}
	}
	if want := daysOf(t, s, p, "/v1/usage/daily", s.pro.Token, v.From, v.To); !slices.Equal(v.Days, want) || len(want) != 30 {
		t.Errorf("daily table from %s to %s:\n%v\nthe API:\n%v", v.From, v.To, v.Days, want)
	}
	var ms float64
	p.eval(`performance.getEntriesByName('numbers-drawn')[0].startTime`, &ms)
	t.Logf("numbers drawn %.0f ms after the navigation started (first load, empty cache)", ms)
	p.checkPolicy(s.GatewayURL)
	p.screenshot("dashboard-user.png")
}

func testRangeChange(t *testing.T, s *stack, b *browser.Browser) {
	p := open(t, b, s.DashboardLink(s.pro.Token), dailyRows)
	var before usageView
	p.eval(usageViewJS, &before)
	to, err := time.Parse(time.DateOnly, before.To)
	if err != nil {
		t.Fatal(err)
	}
	from := to.AddDate(0, 0, -2).Format(time.DateOnly)
	p.setField(`[data-testid=range-from]`, from)
	// Applied from the keyboard: Enter on the focused Apply button.
	p.do("apply the range", chromedp.Focus(chromedp.CSS(`[data-testid=range-apply]`)), chromedp.KeyEvent(kb.Enter))
	p.waitFor("the table of the new range", `document.querySelectorAll('`+dailyRows+`').length === 3 && `+
		`document.querySelector('`+dailyRows+`:last-child').dataset.day === `+jsString(from)+` && `+ready(dailyRows))
	var after usageView
	p.eval(usageViewJS, &after)
	want := daysOf(t, s, p, "/v1/usage/daily", s.pro.Token, from, before.To)
	if !slices.Equal(after.Days, want) || after.Days[0].Day != before.To {
		t.Errorf("after the range change the table holds\n%v\nthe API:\n%v", after.Days, want)
	}
	if !strings.Contains(after.Chart, "from "+from+" to "+before.To) || after.Chart == before.Chart {
		t.Errorf("the chart's text alternative is %q; want the new range's", after.Chart)
	}
	p.checkPolicy(s.GatewayURL)
}

// thousands formats n as the page does (en-US): 12,345.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// decimal formats x with at most two decimals, as the page does: 12.5.
func decimal(x float64) string {
	whole, frac, _ := strings.Cut(fmt.Sprintf("%.2f", x), ".")
	n, _ := strconv.ParseInt(whole, 10, 64)
	if frac = strings.TrimRight(frac, "0"); frac != "" {
		return thousands(n) + "." + frac
	}
	return thousands(n)
}

// money formats an amount of US cents as the page does: $1,234.50.
func money(minor int64, currency string) string {
	if currency != "usd" {
		panic("the demo plans bill in usd, not " + currency)
	}
	return fmt.Sprintf("$%s.%02d", thousands(minor/100), minor%100)
}

// sign makes a token of the local stack's issuer; secret "" is the stack's.
func sign(t *testing.T, secret, user string, admin bool, issued time.Time, ttl time.Duration) string {
	t.Helper()
	if secret == "" {
		secret = seed.JWTSecret
	}
	tok, err := auth.Sign([]byte(secret), seed.JWTIssuer, seed.JWTAudience, user, admin, issued, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
