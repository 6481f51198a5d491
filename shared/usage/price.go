package usage

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Price models: how the calls above a segment's included calls (its
// billable calls) become an amount. Every price is stated per UnitSize
// calls, in the currency's minor unit.
const (
	// PricePerUnit charges each billable call UnitPrice / UnitSize:
	// 50 per 1,000 calls is 0.05 a call, so 1,500 calls cost 75.
	PricePerUnit = "per_unit"
	// PricePackage charges whole packages of UnitSize calls, the last one
	// rounded up: at 50 per 1,000 calls, 1,500 calls are 2 packages, 100.
	PricePackage = "package"
	// PriceGraduated prices each billable call at the tier it falls in:
	// with tiers up to 1,000 at 50 and beyond at 30 per 1,000, 1,500
	// calls cost 1,000 × 0.05 + 500 × 0.03 = 65.
	PriceGraduated = "graduated"
	// PriceVolume prices every billable call at the tier the total falls
	// in: with the tiers above, 1,500 calls cost 1,500 × 0.03 = 45.
	PriceVolume = "volume"
)

// Bounds of a price: at most MaxCallPrice minor units a call (UnitPrice ≤
// MaxCallPrice × UnitSize), so that 10^15 billable calls cost at most
// 10^18 minor units, and at most MaxTiers flat fees of MaxFlatPrice each;
// int64 holds 9.2 × 10^18. That is not every count a period can hold: the
// bounds of an event (see MaxQuantity) let a user's period count up to
// 2.68 × 10^18 calls, which fit in int64 only below 3.4 minor units a call.
// So amounts are computed exactly in big integers and checked, and so are
// the sums of a period's lines (NewPeriodCharge): an amount beyond int64
// is CodeInvalid, never a wrapped number, and the billing run reports that
// period as not priced (RunReport.PlanErrors) and holds its subscription
// back instead of writing a row.
const (
	MaxTiers     = 20
	MaxUnitSize  = 1_000_000_000
	MaxCallPrice = 1000
	MaxFlatPrice = 1_000_000_000_000
)

// Tier is one step of a graduated or volume price. Tiers count billable
// calls (those above the included calls) from the first: a tier holds the
// calls after the previous tier's UpTo up to its own UpTo, inclusive.
type Tier struct {
	// UpTo is the last billable call of the tier; nil on the last tier,
	// which has no bound.
	UpTo *int64 `json:"up_to"`
	// UnitPrice is the price of UnitSize calls in this tier.
	UnitPrice int64 `json:"unit_price"`
	// FlatPrice is charged once when the tier is reached (graduated: each
	// tier with calls in it; volume: the tier of the total).
	FlatPrice int64 `json:"flat_price,omitempty"`
}

// Price is how a plan prices its billable calls.
type Price struct {
	Model string `json:"model"`
	// UnitSize is the N of "a price per N calls", in every model.
	UnitSize int64 `json:"unit_size"`
	// UnitPrice is the price of UnitSize calls (per_unit, package).
	UnitPrice int64 `json:"unit_price"`
	// Tiers are the steps of a graduated or volume price.
	Tiers    []Tier `json:"tiers,omitempty"`
	Currency string `json:"currency"`
}

// TierCharge is what one tier charged.
type TierCharge struct {
	// Tier is the tier's position, from 1.
	Tier      int   `json:"tier"`
	Calls     int64 `json:"calls"`
	UnitPrice int64 `json:"unit_price"`
	FlatPrice int64 `json:"flat_price,omitempty"`
}

// PriceCharge is the charge of a number of billable calls.
type PriceCharge struct {
	// Calls are the billable calls priced.
	Calls int64 `json:"billable_calls"`
	// Units are the packages charged (package model only).
	Units int64 `json:"units,omitempty"`
	// Tiers are the tiers charged (graduated: each tier with calls;
	// volume: the tier of the total).
	Tiers  []TierCharge `json:"tiers,omitempty"`
	Amount int64        `json:"amount"`
}

// tiered reports whether the model prices by tiers.
func tiered(model string) bool { return model == PriceGraduated || model == PriceVolume }

// Charges reports whether the price can charge anything at all.
func (pr Price) Charges() bool {
	if !tiered(pr.Model) {
		return pr.UnitPrice > 0
	}
	for _, t := range pr.Tiers {
		if t.UnitPrice > 0 || t.FlatPrice > 0 {
			return true
		}
	}
	return false
}

// Validate reports the first part of the price that is out of bounds or
// inconsistent, or that Stripe could not charge as stated (a price in a
// currency it takes in steps that is not a multiple of the step, see
// CurrencyStep; a tiered price's own unit price charges nothing and is not
// held to it); errors are CodeInvalid naming the field (price_model,
// overage_unit_size, overage_unit_price, tiers, tiers[i].up_to, …).
func (pr Price) Validate() error {
	switch pr.Model {
	case PricePerUnit, PricePackage, PriceGraduated, PriceVolume:
	default:
		return FieldErrorf("price_model", "must be per_unit, package, graduated or volume")
	}
	if pr.UnitSize < 1 || pr.UnitSize > MaxUnitSize {
		return FieldErrorf("overage_unit_size", "must be between 1 and %d", MaxUnitSize)
	}
	if err := checkUnitPrice("overage_unit_price", pr.UnitPrice, pr.UnitSize); err != nil {
		return err
	}
	if !tiered(pr.Model) {
		if len(pr.Tiers) > 0 {
			return FieldErrorf("tiers", "apply to graduated and volume prices only")
		}
		return CheckAmount("overage_unit_price", pr.UnitPrice, pr.Currency)
	}
	if len(pr.Tiers) == 0 {
		return FieldErrorf("tiers", "a %s price needs at least one tier", pr.Model)
	}
	if err := ValidateTiers(pr.Tiers, pr.UnitSize); err != nil {
		return err
	}
	for i, t := range pr.Tiers {
		if err := CheckAmount(fmt.Sprintf("tiers[%d].unit_price", i), t.UnitPrice, pr.Currency); err != nil {
			return err
		}
		if err := CheckAmount(fmt.Sprintf("tiers[%d].flat_price", i), t.FlatPrice, pr.Currency); err != nil {
			return err
		}
	}
	return nil
}

func checkUnitPrice(field string, price, size int64) error {
	if price < 0 {
		return FieldErrorf(field, "must not be negative")
	}
	if size > 0 && price > MaxCallPrice*size {
		return FieldErrorf(field, "must be at most %d per call (%d per %d calls)", MaxCallPrice, MaxCallPrice*size, size)
	}
	return nil
}

// ValidateTiers checks a list of tiers: 1 to MaxTiers of them, bounds
// rising, only the last without one, prices in bounds (unitSize 0: the unit
// prices are not checked against it).
func ValidateTiers(tiers []Tier, unitSize int64) error {
	if len(tiers) == 0 || len(tiers) > MaxTiers {
		return FieldErrorf("tiers", "must hold 1 to %d tiers", MaxTiers)
	}
	var last int64
	for i, t := range tiers {
		f := fmt.Sprintf("tiers[%d]", i)
		switch {
		case i < len(tiers)-1 && t.UpTo == nil:
			return FieldErrorf(f+".up_to", "is required on every tier but the last")
		case i == len(tiers)-1 && t.UpTo != nil:
			return FieldErrorf(f+".up_to", "must be null on the last tier, which has no bound")
		case t.UpTo != nil && *t.UpTo <= last:
			return FieldErrorf(f+".up_to", "must be above %d, the previous tier's bound", last)
		case t.FlatPrice < 0 || t.FlatPrice > MaxFlatPrice:
			return FieldErrorf(f+".flat_price", "must be between 0 and %d", MaxFlatPrice)
		}
		if err := checkUnitPrice(f+".unit_price", t.UnitPrice, unitSize); err != nil {
			return err
		}
		if t.UpTo != nil {
			last = *t.UpTo
		}
	}
	return nil
}

// Charge prices calls billable calls (calls above the included ones).
// Amounts are exact: every product and sum is a big integer over the
// common denominator UnitSize, and the one division, by UnitSize, is
// rounded half up once per charge to the currency's step (CurrencyStep:
// a minor unit in most currencies, 0.5 of it and more going up; 10 in the
// three-decimal ones, 100 in ISK and UGX), so that every amount charged,
// and every difference and sum of them, is one Stripe takes.
// Zero calls cost nothing, flat prices included. It returns CodeInvalid
// for a price that does not validate, negative calls, or an amount beyond
// int64 (above 9.2 × 10^15 calls at the dearest price Validate allows).
func (pr Price) Charge(calls int64) (PriceCharge, error) {
	if err := pr.Validate(); err != nil {
		return PriceCharge{}, err
	}
	if calls < 0 {
		return PriceCharge{}, FieldErrorf("calls", "must not be negative")
	}
	c := PriceCharge{Calls: calls}
	if calls == 0 {
		return c, nil
	}
	size := big.NewInt(pr.UnitSize)
	num := new(big.Int) // the amount × UnitSize
	n := big.NewInt(calls)
	switch pr.Model {
	case PricePerUnit:
		num.Mul(n, big.NewInt(pr.UnitPrice))
	case PricePackage:
		c.Units = (calls-1)/pr.UnitSize + 1 // ceil without overflow
		num.Mul(big.NewInt(c.Units), big.NewInt(pr.UnitPrice))
		num.Mul(num, size)
	case PriceGraduated:
		var lo int64
		for i, t := range pr.Tiers {
			hi := int64(math.MaxInt64)
			if t.UpTo != nil {
				hi = *t.UpTo
			}
			in := min(calls, hi) - lo
			if in <= 0 {
				break
			}
			c.Tiers = append(c.Tiers, TierCharge{Tier: i + 1, Calls: in, UnitPrice: t.UnitPrice, FlatPrice: t.FlatPrice})
			num.Add(num, new(big.Int).Mul(big.NewInt(in), big.NewInt(t.UnitPrice)))
			num.Add(num, new(big.Int).Mul(big.NewInt(t.FlatPrice), size))
			lo = hi
		}
	case PriceVolume:
		i := len(pr.Tiers) - 1
		for j, t := range pr.Tiers {
			if t.UpTo != nil && calls <= *t.UpTo {
				i = j
				break
			}
		}
		t := pr.Tiers[i]
		c.Tiers = []TierCharge{{Tier: i + 1, Calls: calls, UnitPrice: t.UnitPrice, FlatPrice: t.FlatPrice}}
		num.Mul(n, big.NewInt(t.UnitPrice))
		num.Add(num, new(big.Int).Mul(big.NewInt(t.FlatPrice), size))
	}
	step := big.NewInt(CurrencyStep(pr.Currency))
	amount := roundHalfUp(num, new(big.Int).Mul(size, step))
	amount.Mul(amount, step)
	if !amount.IsInt64() {
		return PriceCharge{}, Errorf(CodeInvalid, "%d calls cost more than the largest amount a ledger row holds", calls)
	}
	c.Amount = amount.Int64()
	return c, nil
}

// roundHalfUp returns num / den rounded half up, for num ≥ 0 and den > 0:
// floor((2·num + den) / (2·den)).
func roundHalfUp(num, den *big.Int) *big.Int {
	twice := new(big.Int).Lsh(num, 1)
	twice.Add(twice, den)
	return twice.Quo(twice, new(big.Int).Lsh(den, 1))
}

// addInt64 returns a + b, and false when the sum does not fit in int64.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	return s, (s > a) == (b > 0)
}

// AddSaturating returns a + b, or the int64 maximum (minimum) where the sum
// would pass it: sums of amounts across users (a preview's totals, what a
// run says is due) show the maximum where the truth is larger, as the
// store's sums do, instead of a wrapped number.
func AddSaturating(a, b int64) int64 {
	if s, ok := addInt64(a, b); ok {
		return s
	}
	if b > 0 {
		return math.MaxInt64
	}
	return math.MinInt64
}

// mulDivFloor returns a × b / c rounded down, exactly (a, b ≥ 0, c > 0),
// and false when the result does not fit in int64.
func mulDivFloor(a, b, c int64) (int64, bool) {
	r := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	r.Quo(r, big.NewInt(c))
	return r.Int64(), r.IsInt64()
}

// FormatMoney writes an amount in minor units for people: "75.50 USD",
// "1,200 JPY".
func FormatMoney(amount int64, currency string) string {
	d := CurrencyDecimals(currency)
	sign := ""
	u := uint64(amount)
	if amount < 0 {
		sign, u = "-", uint64(-(amount+1))+1
	}
	s := strconv.FormatUint(u, 10)
	if d > 0 {
		if len(s) <= d {
			s = strings.Repeat("0", d-len(s)+1) + s
		}
		s = group(s[:len(s)-d]) + "." + s[len(s)-d:]
	} else {
		s = group(s)
	}
	return sign + s + " " + strings.ToUpper(currency)
}

// FormatCount writes a count with thousands separators: "150,500".
func FormatCount(n int64) string {
	if n < 0 {
		return "-" + group(strconv.FormatUint(uint64(-(n+1))+1, 10))
	}
	return group(strconv.FormatInt(n, 10))
}

func group(digits string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	head := len(digits) % 3
	if head > 0 {
		b.WriteString(digits[:head])
	}
	for i := head; i < len(digits); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}

// Describe writes the charge for a customer: the calls, the tier and the
// price, e.g. "51 × 1,000 calls at 0.50 USD = 25.50 USD".
func (pr Price) Describe(c PriceCharge) string {
	per := func(p int64) string {
		if pr.UnitSize == 1 {
			return FormatMoney(p, pr.Currency) + " a call"
		}
		return FormatMoney(p, pr.Currency) + " per " + FormatCount(pr.UnitSize) + " calls"
	}
	total := " = " + FormatMoney(c.Amount, pr.Currency)
	switch pr.Model {
	case PricePackage:
		return fmt.Sprintf("%s × %s calls at %s%s", FormatCount(c.Units), FormatCount(pr.UnitSize),
			FormatMoney(pr.UnitPrice, pr.Currency), total)
	case PricePerUnit:
		return FormatCount(c.Calls) + " calls at " + per(pr.UnitPrice) + total
	}
	parts := make([]string, len(c.Tiers))
	for i, t := range c.Tiers {
		parts[i] = fmt.Sprintf("tier %d: %s calls at %s", t.Tier, FormatCount(t.Calls), per(t.UnitPrice))
		if t.FlatPrice > 0 {
			parts[i] += " + " + FormatMoney(t.FlatPrice, pr.Currency) + " flat"
		}
	}
	if pr.Model == PriceVolume && len(c.Tiers) == 1 {
		parts[0] = "all in " + parts[0]
	}
	return strings.Join(parts, ", ") + total
}
