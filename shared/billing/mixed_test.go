package billing_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/usage"
)

// sentItem is what a recorded request said, without the ledger row's id.
type sentItem struct {
	Method, Path, Key string
	Form              map[string]string
}

// TestMixedRunStripeMock bills a month of every price model, an upgrade, a
// downgrade and a late adjustment against stripe-mock, through a
// recording proxy, and checks every request sent against the list worked
// out by hand below.
func TestMixedRunStripeMock(t *testing.T) {
	mock := pgtest.Require(t, "NEXUS_TEST_STRIPE_URL", "stripe-mock")
	proxy := stripetest.NewRecorder(t, mock)
	e := newPlanEnvAt(t, proxy.URL)
	start := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	perUnit, graduated, volume := usage.PricePerUnit, usage.PriceGraduated, usage.PriceVolume
	tiers := []usage.Tier{{UpTo: ptr(int64(100_000)), UnitPrice: 50}, {UnitPrice: 20, FlatPrice: 1000}}
	feb := func(d int) time.Time { return time.Date(2026, 2, d, 0, 0, 0, 0, time.UTC) }
	users := []struct {
		o     usage.Overrides
		calls map[int]int64 // day of February → calls
	}{
		{usage.Overrides{PriceModel: &perUnit}, map[int]int64{10: 150_500}},
		{usage.Overrides{}, map[int]int64{10: 150_500}}, // package, pro's own
		{usage.Overrides{PriceModel: &graduated, Tiers: tiers}, map[int]int64{10: 350_000}},
		{usage.Overrides{PriceModel: &volume, Tiers: tiers}, map[int]int64{10: 350_000}},
		{usage.Overrides{}, map[int]int64{5: 150_000, 10: 1_000, 20: 10_000_000}}, // upgraded on 10 February
		{usage.Overrides{}, map[int]int64{5: 90_000, 20: 60_000}},                 // downgraded on 12 February
	}
	for i, u := range users {
		e.put(userID(i+1), usage.PlanPro, start, u.o)
		for d, n := range u.calls {
			e.addCalls(userID(i+1), feb(d), n)
		}
	}
	e.put(userID(5), usage.PlanEnterprise, time.Date(2026, 2, 10, 14, 0, 0, 0, time.UTC))
	e.put(userID(6), usage.PlanFree, time.Date(2026, 2, 12, 10, 0, 0, 0, time.UTC))
	run := func(at time.Time) {
		t.Helper()
		if _, err := e.run(at); err != nil {
			t.Fatalf("run at %v: %v", at, err)
		}
	}
	run(time.Date(2026, 2, 11, 0, 30, 0, 0, time.UTC)) // the upgraded user's pro segment
	run(runAt)                                         // February
	e.addCalls(userID(2), feb(27), 5_000)              // late calls for the package user
	run(runAt.Add(24 * time.Hour))

	head := "API overage, 2026-02-01 – 2026-02-28: "
	item := func(user, seq int, amount int64, desc string) sentItem {
		return sentItem{Method: http.MethodPost, Path: "/v1/invoiceitems", Key: billing.IdempotencyKey(userID(user), february.Start, seq),
			Form: map[string]string{"customer": fmt.Sprintf("cus_%02d", user), "amount": strconv.FormatInt(amount, 10), "currency": "usd",
				"description": desc, "period[start]": "1769904000", "period[end]": "1772323199",
				"metadata[user_id]": userID(user), "metadata[period_start]": "2026-02-01", "metadata[seq]": strconv.Itoa(seq)}}
	}
	want := []sentItem{
		// per unit: 50,500 billable calls × 0.05 = 25.25.
		item(1, 0, 2525, head+"Pro, 150,500 calls, 100,000 included: 50,500 calls at 0.50 USD per 1,000 calls = 25.25 USD"),
		// package: 51 packages of 1,000 × 0.50 = 25.50; 5,000 late calls make 56: 2.50 more.
		item(2, 0, 2550, head+"Pro, 150,500 calls, 100,000 included: 51 × 1,000 calls at 0.50 USD = 25.50 USD"),
		item(2, 1, 250, "API overage adjustment 1, 2026-02-01 – 2026-02-28: Pro, 155,500 calls, 100,000 included: "+
			"56 × 1,000 calls at 0.50 USD = 28.00 USD; less 25.50 USD charged before"),
		// graduated: 100,000 × 0.05 + 150,000 × 0.02 + 10.00 = 90.00.
		item(3, 0, 9000, head+"Pro, 350,000 calls, 100,000 included: tier 1: 100,000 calls at 0.50 USD per 1,000 calls, "+
			"tier 2: 150,000 calls at 0.20 USD per 1,000 calls + 10.00 USD flat = 90.00 USD"),
		// volume: all 250,000 at tier 2's 0.02 + 10.00 = 60.00.
		item(4, 0, 6000, head+"Pro, 350,000 calls, 100,000 included: all in tier 2: 250,000 calls at 0.20 USD per 1,000 calls + 10.00 USD flat = 60.00 USD"),
		// upgrade: the calls before it as pro bills them for the whole period
		// (100,000 included), those after against enterprise's 10,000,000,
		// the period's billable calls counted on.
		item(5, 0, 2500, head+"Pro 2026-02-01 – 2026-02-09, 150,000 calls, 100,000 included: 50 × 1,000 calls at 0.50 USD = 25.00 USD"),
		item(5, 1, 2020, "API overage adjustment 1, 2026-02-01 – 2026-02-28: Enterprise 2026-02-10 – 2026-02-28, 10,001,000 calls (10,151,000 in the period so far), "+
			"10,000,000 included: billable calls 50,001 – 151,000 of the period: 151 × 1,000 calls at 0.20 USD = 30.20 USD, less 10.00 USD for the first 50,000: 20.20 USD"),
		// downgrade: free from 1 March; all of February on pro.
		item(6, 0, 2500, head+"Pro, 150,000 calls, 100,000 included: 50 × 1,000 calls at 0.50 USD = 25.00 USD"),
	}
	rows := e.rows()
	var got []sentItem
	for _, r := range proxy.Requests() {
		if r.Status != http.StatusOK {
			t.Errorf("%s %s answered %d", r.Method, r.Path, r.Status)
		}
		if r.Method == http.MethodGet {
			continue // the lookup before each item
		}
		f := map[string]string{}
		for k := range r.Form {
			f[k] = r.Form.Get(k)
		}
		user, seq := f["metadata[user_id]"], f["metadata[seq]"]
		if row := rows[user+"/"+seq]; row == nil || f["metadata[ledger_id]"] != row.ID || row.Status != billing.LedgerBilled {
			t.Errorf("request for %s/%s names ledger row %s; the row is %+v", user, seq, f["metadata[ledger_id]"], row)
		}
		delete(f, "metadata[ledger_id]")
		got = append(got, sentItem{Method: r.Method, Path: r.Path, Key: r.Key, Form: f})
	}
	slices.SortFunc(got, func(a, b sentItem) int { return strings.Compare(a.Key, b.Key) })
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("requests to stripe-mock (-want +got):\n%s", d)
	}
}
