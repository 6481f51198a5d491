package browser_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/nexus/usage/cmd/internal/e2e/browser"
)

// testAlerts: a user opens its alerts, sees its plan's 80 % and 100 %
// rules, adds a rule of its own and a webhook endpoint (its secret shown
// once); an admin opens everyone's delivery log, where the demo's
// crossings were delivered to the stack's receiver, and replays one.
func testAlerts(t *testing.T, s *stack, b *browser.Browser) {
	p := open(t, b, s.DashboardLink(s.pro.Token), `[data-testid=alerts-tab]`)
	p.do("open the alerts", chromedp.Click(chromedp.CSS(`[data-testid=alerts-tab]`)))
	p.waitFor("the plan's rules", ready(`[data-testid=rules-table] tr[data-kind=percent][data-value="80"]`)+
		` && !!document.querySelector('[data-testid=rules-table] tr[data-kind=percent][data-value="100"]')`)
	p.setField(`[data-testid=rule-form] select`, "calls")
	p.setField(`[data-testid=rule-form] input[type=number]`, "1234")
	p.do("add a rule", chromedp.Click(chromedp.CSS(`[data-testid=rule-form] button[type=submit]`)))
	p.waitFor("the user's rule", ready(`[data-testid=rules-table] tr[data-kind=calls][data-value="1234"]`))
	p.setField(`[data-testid=endpoint-form] input[type=url]`, s.ReceiverURL)
	p.do("add an endpoint", chromedp.Click(chromedp.CSS(`[data-testid=endpoint-form] button[type=submit]`)))
	p.waitFor("the secret, shown once", ready(`[data-testid=endpoint-secret]`))
	var secret string
	p.eval(`document.querySelector('[data-testid=endpoint-secret] pre').textContent`, &secret)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("the secret shown is %q; want whsec_…", secret)
	}

	q := open(t, b, s.DashboardLink(s.Admin.Token), `[data-testid=admin-tab]`)
	q.do("open the admin tab", chromedp.Click(chromedp.CSS(`[data-testid=admin-tab]`)))
	q.waitFor("the admin overview", ready(`[data-testid=admin-summary]`))
	q.do("open the alerts", chromedp.Click(chromedp.CSS(`#tab-notify`)))
	delivered := `[data-testid=deliveries-table] tr[data-status=delivered]`
	q.waitFor("the demo's deliveries", ready(delivered))
	var id string
	q.eval(`document.querySelector('`+delivered+`').dataset.deliveryId`, &id)
	q.do("replay one", chromedp.Click(chromedp.CSS(`button[aria-label="Replay delivery `+id+`"]`)))
	q.waitFor("the replay's note", `document.body.textContent.includes('Replayed 1 delivery.')`)
	q.checkPolicy(s.GatewayURL)
}
