package dashboard

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// moneyCase is an amount in minor units, as the API answers it, and what
// the page shows for it.
type moneyCase struct {
	Minor    int64  `json:"minor"`
	Currency string `json:"currency"`
	Want     string `json:"want"`
}

// TestMoneyInStripesMinorUnits runs the page's money formatting
// (web/src/format.js) under Node: amounts are in the minor unit as Stripe
// counts it (usage.CurrencyDecimals), which is not always the one of ISO
// 4217 that the browser's Intl knows: Stripe counts HUF, IDR, COP, ISK
// and UGX in hundredths, which Intl shows without decimals. The page
// showed 5.00 HUF (500) as "HUF 500". Without node it is skipped, except
// under CI=true.
func TestMoneyInStripesMinorUnits(t *testing.T) {
	node := testkit.RequireTool(t, "node", "the page's formatting runs under it")
	t.Parallel()
	// Intl puts a no-break space between a code and the number.
	cases := []moneyCase{
		{1250, "usd", "$12.50"},
		{1200, "jpy", "¥1,200"},
		{5120, "kwd", "KWD\u00a05.120"},
		{500, "huf", "HUF\u00a05"},
		{550, "huf", "HUF\u00a05.50"},
		{100_000, "idr", "IDR\u00a01,000"},
		{150, "cop", "COP\u00a01.50"},
		{500, "isk", "ISK\u00a05"},
		{250_000, "ugx", "UGX\u00a02,500"},
		{500, "twd", "NT$5.00"},
		{500, "mga", "MGA\u00a0500"},
		{-1050, "eur", "-€10.50"},
	}
	// Every currency Stripe lists, and the ones the Go code names: the
	// page's digits are the Go code's.
	codes := []string{"usd", "eur", "gbp", "jpy", "krw", "vnd", "clp", "bif", "djf", "gnf", "kmf", "mga", "pyg", "rwf", "vuv",
		"xaf", "xof", "xpf", "bhd", "jod", "kwd", "omr", "tnd", "isk", "ugx", "huf", "twd", "idr", "cop", "lbp", "iqd", "lak"}
	want := map[string]int{}
	for _, c := range codes {
		want[c] = usage.CurrencyDecimals(c)
	}
	in, err := json.Marshal(map[string]any{"cases": cases, "codes": codes})
	if err != nil {
		t.Fatal(err)
	}
	src, err := filepath.Abs(filepath.Join("..", "..", "web", "src", "format.js"))
	if err != nil {
		t.Fatal(err)
	}
	script := `import { money, minorDigits } from ` + string(mustJSON(t, "file://"+src)) + `;
const input = JSON.parse(process.argv[1]);
console.log(JSON.stringify({
  money: input.cases.map((c) => money(c.minor, c.currency)),
  digits: Object.fromEntries(input.codes.map((c) => [c, minorDigits(c)])),
}));`
	out, err := exec.Command(node, "--input-type=module", "-e", script, string(in)).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		Money  []string       `json:"money"`
		Digits map[string]int `json:"digits"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node's answer %q: %v", out, err)
	}
	for i, c := range cases {
		if i >= len(got.Money) || got.Money[i] != c.Want {
			t.Errorf("money(%d, %q) = %q; want %q", c.Minor, c.Currency, at(got.Money, i), c.Want)
		}
	}
	for c, d := range want {
		if got.Digits[c] != d {
			t.Errorf("minorDigits(%q) = %d; want %d, as usage.CurrencyDecimals", c, got.Digits[c], d)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}
