package usage

import "strings"

// Stripe takes every amount in the currency's minor unit as it counts it
// (https://docs.stripe.com/currencies), and some currencies only in steps
// of several minor units. Prices and amounts here are in those units, so
// that a ledger row's amount is what goes to Stripe as it is.
//
//   - Zero-decimal currencies (JPY, KRW, …): the minor unit is the unit.
//   - Three-decimal currencies (BHD, JOD, KWD, OMR, TND): thousandths,
//     in multiples of 10 only.
//   - ISK and UGX, Stripe's special cases: counted in hundredths, as
//     two-decimal currencies, in multiples of 100 only (whole krónur and
//     shillings; UGX is on Stripe's zero-decimal list all the same).
//   - Every other currency: hundredths, any of them. HUF and TWD are
//     special cases for payouts only, which this code makes none of.
var currencyRules = map[string]struct {
	decimals int
	step     int64
}{
	"bif": {0, 1}, "clp": {0, 1}, "djf": {0, 1}, "gnf": {0, 1}, "jpy": {0, 1}, "kmf": {0, 1}, "krw": {0, 1},
	"mga": {0, 1}, "pyg": {0, 1}, "rwf": {0, 1}, "vnd": {0, 1}, "vuv": {0, 1}, "xaf": {0, 1}, "xof": {0, 1},
	"xpf": {0, 1},
	"bhd": {3, 10}, "jod": {3, 10}, "kwd": {3, 10}, "omr": {3, 10}, "tnd": {3, 10},
	"isk": {2, 100}, "ugx": {2, 100},
}

// CurrencyDecimals returns the decimals of the currency's minor unit as
// Stripe counts it: 0, 3, or 2 for every currency it does not list.
func CurrencyDecimals(currency string) int {
	if r, ok := currencyRules[currency]; ok {
		return r.decimals
	}
	return 2
}

// CurrencyStep returns the step, in minor units, of the amounts Stripe
// takes in the currency: 10 for the three-decimal currencies, 100 for ISK
// and UGX, 1 for the others.
func CurrencyStep(currency string) int64 {
	if r, ok := currencyRules[currency]; ok {
		return r.step
	}
	return 1
}

// CheckAmount returns CodeInvalid naming field when amount (in minor
// units) is not one Stripe takes in the currency: not a multiple of its
// step (CurrencyStep).
func CheckAmount(field string, amount int64, currency string) error {
	if step := CurrencyStep(currency); amount%step != 0 {
		return FieldErrorf(field, "must be a multiple of %d in %s, the smallest amount Stripe charges in it (%s), not %d",
			step, strings.ToUpper(currency), FormatMoney(step, currency), amount)
	}
	return nil
}
