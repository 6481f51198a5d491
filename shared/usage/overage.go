package usage

// Overage is the charge for usage above the included calls of one period.
type Overage struct {
	Included int64 `json:"included"`
	Used     int64 `json:"used"`
	Units    int64 `json:"units"`
	UnitSize int64 `json:"unit_size"`
	// UnitPrice and Amount are in the currency's minor unit.
	UnitPrice int64  `json:"unit_price"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
}

// ComputeOverage prices used calls against a plan: units =
// ceil(max(0, used − included) / unit size), amount = units × unit price.
// A plan that does not bill overage yields zero units.
func ComputeOverage(p Plan, used int64) Overage {
	o := Overage{Included: p.IncludedCalls, Used: used, UnitSize: p.OverageUnitSize, UnitPrice: p.OverageUnitPrice, Currency: p.Currency}
	if !p.Bills() || p.OverageUnitSize <= 0 || used <= p.IncludedCalls {
		return o
	}
	excess := used - p.IncludedCalls
	o.Units = (excess + p.OverageUnitSize - 1) / p.OverageUnitSize
	o.Amount = o.Units * p.OverageUnitPrice
	return o
}
