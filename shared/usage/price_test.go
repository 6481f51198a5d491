package usage_test

import (
	"math"
	"strings"
	"testing"

	"github.com/nexus/usage/shared/usage"
)

func upTo(n int64) *int64 { return &n }

// The four models at 50 per 1,000 calls; the tiered ones with tiers up to
// 1,000,000 calls at 50, up to 5,000,000 at 30 (and 10.00 flat on
// reaching it), and beyond at 10, per 1,000 calls.
var (
	testTiers = []usage.Tier{{UpTo: upTo(1_000_000), UnitPrice: 50}, {UpTo: upTo(5_000_000), UnitPrice: 30, FlatPrice: 1000}, {UnitPrice: 10}}
	perUnit   = usage.Price{Model: usage.PricePerUnit, UnitSize: 1000, UnitPrice: 50, Currency: "usd"}
	pkg       = usage.Price{Model: usage.PricePackage, UnitSize: 1000, UnitPrice: 50, Currency: "usd"}
	graduated = usage.Price{Model: usage.PriceGraduated, UnitSize: 1000, Tiers: testTiers, Currency: "usd"}
	volume    = usage.Price{Model: usage.PriceVolume, UnitSize: 1000, Tiers: testTiers, Currency: "usd"}
)

// TestPriceCharge prices billable calls under each model at the
// boundaries, against amounts worked out by hand (in cents; a call costs
// 0.05 in tier 1, 0.03 in tier 2, 0.01 in tier 3).
func TestPriceCharge(t *testing.T) {
	tests := []struct {
		name  string
		calls int64
		// per unit, package, graduated, volume
		want [4]int64
	}{
		// Nothing billable costs nothing, flat prices included.
		{"zero", 0, [4]int64{0, 0, 0, 0}},
		// 0.05 rounds down; a started package is a whole one.
		{"one call", 1, [4]int64{0, 50, 0, 0}},
		// 0.45 down, 0.5 up (half up).
		{"nine calls", 9, [4]int64{0, 50, 0, 0}},
		{"ten calls: exactly half a cent", 10, [4]int64{1, 50, 1, 1}},
		{"thirty calls: 1.5", 30, [4]int64{2, 50, 2, 2}},
		{"exactly one package", 1000, [4]int64{50, 50, 50, 50}},
		{"one past a package", 1001, [4]int64{50, 100, 50, 50}},
		// The first tier's edge: all calls in tier 1.
		{"at the first tier edge", 1_000_000, [4]int64{50_000, 50_000, 50_000, 50_000}},
		// Graduated: 50,000 + 0.03 + 1,000 flat; volume: 1,000,001 × 0.03 + 1,000.
		{"one past the first edge", 1_000_001, [4]int64{50_000, 50_050, 51_000, 31_000}},
		// Graduated: 50,000 + 50 × 0.03 = 1.5 → 2, + 1,000 flat.
		{"fifty into tier 2", 1_000_050, [4]int64{50_003, 50_050, 51_002, 31_002}},
		// Graduated: 50,000 + 4,000,000 × 0.03 + 1,000; volume: 5,000,000 × 0.03 + 1,000.
		{"at the second edge", 5_000_000, [4]int64{250_000, 250_000, 171_000, 151_000}},
		// Volume drops to tier 3 for every call: 5,000,001 × 0.01.
		{"one past the second edge", 5_000_001, [4]int64{250_000, 250_050, 171_000, 50_000}},
		// 10^15 calls: 5 × 10^13; graduated 171,000 + (10^15 − 5 × 10^6) × 0.01.
		{"very large", 1_000_000_000_000_000, [4]int64{50_000_000_000_000, 50_000_000_000_000, 10_000_000_121_000, 10_000_000_000_000}},
	}
	prices := []usage.Price{perUnit, pkg, graduated, volume}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, pr := range prices {
				c, err := pr.Charge(tt.calls)
				if err != nil {
					t.Fatalf("%s.Charge(%d): %v", pr.Model, tt.calls, err)
				}
				if c.Amount != tt.want[i] || c.Calls != tt.calls {
					t.Errorf("%s.Charge(%d) = %d; want %d", pr.Model, tt.calls, c.Amount, tt.want[i])
				}
			}
		})
	}
}

func TestPriceChargeDetail(t *testing.T) {
	c, _ := pkg.Charge(150_500)
	if c.Units != 151 || c.Amount != 7550 || pkg.Describe(c) != "151 × 1,000 calls at 0.50 USD = 75.50 USD" {
		t.Errorf("package: %+v, %q", c, pkg.Describe(c))
	}
	c, _ = perUnit.Charge(150_500)
	if c.Amount != 7525 || perUnit.Describe(c) != "150,500 calls at 0.50 USD per 1,000 calls = 75.25 USD" {
		t.Errorf("per unit: %+v, %q", c, perUnit.Describe(c))
	}
	c, _ = graduated.Charge(2_500_000)
	want := "tier 1: 1,000,000 calls at 0.50 USD per 1,000 calls, tier 2: 1,500,000 calls at 0.30 USD per 1,000 calls + 10.00 USD flat = 960.00 USD"
	if len(c.Tiers) != 2 || c.Tiers[1].Calls != 1_500_000 || c.Amount != 96_000 || graduated.Describe(c) != want {
		t.Errorf("graduated: %+v, %q", c, graduated.Describe(c))
	}
	c, _ = volume.Charge(2_500_000)
	want = "all in tier 2: 2,500,000 calls at 0.30 USD per 1,000 calls + 10.00 USD flat = 760.00 USD"
	if len(c.Tiers) != 1 || c.Tiers[0].Tier != 2 || c.Amount != 76_000 || volume.Describe(c) != want {
		t.Errorf("volume: %+v, %q", c, volume.Describe(c))
	}
}

// TestPriceChargeBounds: the dearest price the bounds allow, at 10^15
// calls, still fits; an amount beyond int64 is an error, never a wrapped
// number.
func TestPriceChargeBounds(t *testing.T) {
	dear := usage.Price{Model: usage.PricePerUnit, UnitSize: 1, UnitPrice: usage.MaxCallPrice, Currency: "usd"}
	if c, err := dear.Charge(1_000_000_000_000_000); err != nil || c.Amount != 1_000_000_000_000_000_000 {
		t.Errorf("dearest price at 10^15 calls = %+v, %v; want 10^18", c, err)
	}
	if _, err := dear.Charge(math.MaxInt64); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("an amount beyond int64: %v; want CodeInvalid", err)
	}
	if c, err := pkg.Charge(math.MaxInt64); err != nil || c.Units != math.MaxInt64/1000+1 {
		t.Errorf("package of MaxInt64 calls = %+v, %v", c, err)
	}
}

func TestPriceValidate(t *testing.T) {
	tests := []struct {
		name  string
		price usage.Price
		field string
	}{
		{"per unit", perUnit, ""},
		{"graduated", graduated, ""},
		{"unknown model", usage.Price{Model: "tiered", UnitSize: 1}, "price_model"},
		{"zero unit size", usage.Price{Model: usage.PricePackage}, "overage_unit_size"},
		{"negative price", usage.Price{Model: usage.PricePackage, UnitSize: 1, UnitPrice: -1}, "overage_unit_price"},
		{"dearer than the bound", usage.Price{Model: usage.PricePerUnit, UnitSize: 10, UnitPrice: 10_001}, "overage_unit_price"},
		{"tiers on a package price", usage.Price{Model: usage.PricePackage, UnitSize: 1, Tiers: testTiers}, "tiers"},
		{"volume without tiers", usage.Price{Model: usage.PriceVolume, UnitSize: 1}, "tiers"},
		{"unbounded tier before the last", usage.Price{Model: usage.PriceVolume, UnitSize: 1,
			Tiers: []usage.Tier{{UnitPrice: 1}, {UnitPrice: 1}}}, "tiers[0].up_to"},
		{"bounded last tier", usage.Price{Model: usage.PriceVolume, UnitSize: 1,
			Tiers: []usage.Tier{{UpTo: upTo(10), UnitPrice: 1}}}, "tiers[0].up_to"},
		{"bounds not rising", usage.Price{Model: usage.PriceGraduated, UnitSize: 1,
			Tiers: []usage.Tier{{UpTo: upTo(10)}, {UpTo: upTo(10)}, {}}}, "tiers[1].up_to"},
		{"negative flat price", usage.Price{Model: usage.PriceGraduated, UnitSize: 1,
			Tiers: []usage.Tier{{FlatPrice: -1}}}, "tiers[0].flat_price"},
		{"tier dearer than the bound", usage.Price{Model: usage.PriceGraduated, UnitSize: 1,
			Tiers: []usage.Tier{{UnitPrice: usage.MaxCallPrice + 1}}}, "tiers[0].unit_price"},
		// Stripe takes amounts of three-decimal currencies in multiples of
		// 10, and ISK and UGX in whole units (multiples of 100): a price
		// in them that is not one could never be charged as stated.
		{"KWD in steps of 10", usage.Price{Model: usage.PricePackage, UnitSize: 1000, UnitPrice: 20, Currency: "kwd"}, ""},
		{"KWD below its step", usage.Price{Model: usage.PricePackage, UnitSize: 1000, UnitPrice: 15, Currency: "kwd"}, "overage_unit_price"},
		{"BHD per unit below its step", usage.Price{Model: usage.PricePerUnit, UnitSize: 1000, UnitPrice: 5, Currency: "bhd"}, "overage_unit_price"},
		{"ISK in hundredths", usage.Price{Model: usage.PricePerUnit, UnitSize: 1000, UnitPrice: 150, Currency: "isk"}, "overage_unit_price"},
		{"ISK in whole krónur", usage.Price{Model: usage.PricePerUnit, UnitSize: 1000, UnitPrice: 200, Currency: "isk"}, ""},
		{"UGX tier unit price", usage.Price{Model: usage.PriceGraduated, UnitSize: 1000, Currency: "ugx",
			Tiers: []usage.Tier{{UpTo: upTo(10), UnitPrice: 100}, {UnitPrice: 50}}}, "tiers[1].unit_price"},
		{"UGX flat price", usage.Price{Model: usage.PriceVolume, UnitSize: 1000, Currency: "ugx",
			Tiers: []usage.Tier{{UpTo: upTo(10), UnitPrice: 100, FlatPrice: 1000}, {UnitPrice: 100, FlatPrice: 1050}}}, "tiers[1].flat_price"},
		// A tiered price's own unit price charges nothing: not checked.
		{"UGX unit price beside tiers", usage.Price{Model: usage.PriceVolume, UnitSize: 1000, UnitPrice: 5, Currency: "ugx",
			Tiers: []usage.Tier{{UnitPrice: 100}}}, ""},
		{"JPY in any yen", usage.Price{Model: usage.PricePackage, UnitSize: 1000, UnitPrice: 7, Currency: "jpy"}, ""},
		// Stripe takes HUF and TWD charges in any hundredth (its steps of
		// 100 are for payouts).
		{"HUF in hundredths", usage.Price{Model: usage.PricePackage, UnitSize: 1000, UnitPrice: 7, Currency: "huf"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := usage.ErrorField(tt.price.Validate()); got != tt.field {
				t.Errorf("Validate() field = %q; want %q", got, tt.field)
			}
		})
	}
}

// TestPriceChargeCurrencyStep: in a currency whose amounts Stripe takes
// in steps (10 for three-decimal currencies, 100 for ISK and UGX), every
// amount a price in steps charges is a multiple of the step, under every
// model, however many calls: per-call prices are rounded half up to the
// step once per charge, so a line (the difference of two charges) and a
// period's lines are too. A call at 0.010 KWD per 1,000 calls cost 0.00001
// KWD, and 50 of them were charged 0.001 KWD, which Stripe refuses.
func TestPriceChargeCurrencyStep(t *testing.T) {
	tiers := func(unit, flat int64) []usage.Tier {
		return []usage.Tier{{UpTo: upTo(1_000), UnitPrice: 5 * unit}, {UpTo: upTo(5_000), UnitPrice: 3 * unit, FlatPrice: flat}, {UnitPrice: unit}}
	}
	for _, cur := range []struct {
		code string
		step int64
	}{{"kwd", 10}, {"bhd", 10}, {"jod", 10}, {"omr", 10}, {"tnd", 10}, {"isk", 100}, {"ugx", 100}} {
		prices := []usage.Price{
			{Model: usage.PricePerUnit, UnitSize: 1000, UnitPrice: cur.step, Currency: cur.code},
			{Model: usage.PricePerUnit, UnitSize: 1, UnitPrice: cur.step, Currency: cur.code},
			{Model: usage.PricePackage, UnitSize: 7, UnitPrice: 3 * cur.step, Currency: cur.code},
			{Model: usage.PriceGraduated, UnitSize: 1000, Tiers: tiers(cur.step, 7*cur.step), Currency: cur.code},
			{Model: usage.PriceVolume, UnitSize: 333, Tiers: tiers(cur.step, 7*cur.step), Currency: cur.code},
		}
		for _, pr := range prices {
			if err := pr.Validate(); err != nil {
				t.Fatalf("%s %s: %v", cur.code, pr.Model, err)
			}
			for calls := int64(0); calls <= 12_000; calls++ {
				c, err := pr.Charge(calls)
				if err != nil {
					t.Fatalf("%s %s.Charge(%d): %v", cur.code, pr.Model, calls, err)
				}
				if c.Amount%cur.step != 0 {
					t.Fatalf("%s %s (unit size %d).Charge(%d) = %d; want a multiple of %d", cur.code, pr.Model, pr.UnitSize, calls, c.Amount, cur.step)
				}
			}
		}
		// Rounded half up to the step: 0.015 KWD is charged 0.020, 0.014 0.010.
		pr := prices[0]
		for calls, want := range map[int64]int64{1: 0, 499: 0, 500: cur.step, 1_499: cur.step, 1_500: 2 * cur.step} {
			if c, _ := pr.Charge(calls); c.Amount != want {
				t.Errorf("%s per unit at %d per 1,000 calls: Charge(%d) = %d; want %d", cur.code, cur.step, calls, c.Amount, want)
			}
		}
	}
}

func TestFormatMoney(t *testing.T) {
	for amount, want := range map[int64]string{0: "0.00 USD", 5: "0.05 USD", 7550: "75.50 USD", 123_456_789: "1,234,567.89 USD", -1000: "-10.00 USD"} {
		if got := usage.FormatMoney(amount, "usd"); got != want {
			t.Errorf("FormatMoney(%d, usd) = %q; want %q", amount, got, want)
		}
	}
	if got := usage.FormatMoney(1200, "jpy"); got != "1,200 JPY" {
		t.Errorf("FormatMoney(1200, jpy) = %q", got)
	}
	if got := usage.FormatMoney(1500, "kwd"); got != "1.500 KWD" {
		t.Errorf("FormatMoney(1500, kwd) = %q", got)
	}
	// Stripe counts UGX and ISK in hundredths, whole ones only (its
	// "special cases"): 500 is 5 shillings, not 500.
	for _, c := range []string{"ugx", "isk"} {
		if got, want := usage.FormatMoney(500, c), "5.00 "+strings.ToUpper(c); got != want {
			t.Errorf("FormatMoney(500, %s) = %q; want %q", c, got, want)
		}
	}
}

func TestAddSaturating(t *testing.T) {
	tests := []struct {
		name       string
		a, b, want int64
	}{
		{"small", 2, 3, 5},
		{"credit", 2, -3, -1},
		{"to the maximum", math.MaxInt64 - 1, 1, math.MaxInt64},
		{"past the maximum", math.MaxInt64 - 1, 2, math.MaxInt64},
		{"two large", 6_000_000_000_000_000_000, 6_000_000_000_000_000_000, math.MaxInt64},
		{"at the maximum", math.MaxInt64, 0, math.MaxInt64},
		{"past the minimum", math.MinInt64 + 1, -2, math.MinInt64},
		{"down from the maximum", math.MaxInt64, -1, math.MaxInt64 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := usage.AddSaturating(tt.a, tt.b); got != tt.want {
				t.Errorf("AddSaturating(%d, %d) = %d; want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
