package notify_test

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

var (
	t0     = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	period = usage.Period{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
	user   = "0190a4c4-52a4-7000-8000-000000000001"
)

func ptr[T any](v T) *T { return &v }

func sub(plan usage.Plan) *usage.Subscription {
	return &usage.Subscription{UserID: user, PlanID: plan.ID, Effective: plan, PeriodAnchor: period.Start}
}

var (
	free = usage.Plan{ID: "free", IncludedCalls: 1000, HardLimit: true, PriceModel: usage.PricePackage, OverageUnitSize: 1000, Currency: "usd"}
	pro  = usage.Plan{ID: "pro", IncludedCalls: 100_000, PriceModel: usage.PricePackage, OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
)

func rule(kind string, value int64, plan string) notify.Rule {
	r := notify.Rule{ID: notify.NewID(), Kind: kind, Value: value, Enabled: true}
	if plan != "" {
		r.PlanID = plan
	} else {
		r.UserID = user
	}
	return r
}

// TestThresholds turns rules into calls: percentages rounded up, a hard
// quota at the included calls, overage at the first call that costs the
// amount; rules the terms cannot reach, of another plan or disabled give
// none.
func TestThresholds(t *testing.T) {
	disabled := rule(notify.KindCalls, 5, "")
	disabled.Enabled = false
	tests := []struct {
		name  string
		plan  usage.Plan
		rule  notify.Rule
		calls int64 // 0: no threshold
		typ   string
	}{
		{"80 % of 1,000", free, rule(notify.KindPercent, 80, "free"), 800, notify.EventThreshold},
		{"33 % rounds up", usage.Plan{ID: "free", IncludedCalls: 10}, rule(notify.KindPercent, 33, "free"), 4, notify.EventThreshold},
		{"1 % of 1 is the first call", usage.Plan{ID: "free", IncludedCalls: 1}, rule(notify.KindPercent, 1, "free"), 1, notify.EventThreshold},
		{"150 % of 1,000", free, rule(notify.KindPercent, 150, "free"), 1500, notify.EventThreshold},
		{"percent without included calls", usage.Plan{ID: "free"}, rule(notify.KindPercent, 80, "free"), 0, ""},
		{"calls", free, rule(notify.KindCalls, 42, ""), 42, notify.EventThreshold},
		{"hard quota", free, rule(notify.KindQuota, 0, "free"), 1000, notify.EventQuota},
		{"quota of a soft plan", pro, rule(notify.KindQuota, 0, "pro"), 0, ""},
		// package of 1,000 calls at 50 cents: 1 dollar is 2 packages, the
		// 1,001st billable call.
		{"overage 1 USD, package", pro, rule(notify.KindOverage, 100, "pro"), 100_000 + 1001, notify.EventOverage},
		{"overage 1 cent, package", pro, rule(notify.KindOverage, 1, "pro"), 100_001, notify.EventOverage},
		{"overage on free never bills", free, rule(notify.KindOverage, 1, "free"), 0, ""},
		{"another plan's rule", free, rule(notify.KindPercent, 80, "pro"), 0, ""},
		{"disabled", free, disabled, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := notify.Thresholds(sub(tt.plan), []notify.Rule{tt.rule}, period, t0)
			if tt.calls == 0 {
				if len(th) != 0 {
					t.Fatalf("Thresholds = %+v; want none", th)
				}
				return
			}
			if len(th) != 1 || th[0].Calls != tt.calls || th[0].EventType != tt.typ || th[0].RuleID != tt.rule.ID {
				t.Fatalf("Thresholds = %+v; want %s at %d calls", th, tt.typ, tt.calls)
			}
			d := th[0].Data
			if d.UserID != user || d.PlanID != tt.plan.ID || d.Period != period || d.IncludedCalls != tt.plan.IncludedCalls ||
				d.ThresholdCalls != tt.calls || d.Rule.ID != tt.rule.ID || d.Rule.Scope != tt.rule.Scope() {
				t.Errorf("data %+v", d)
			}
		})
	}
}

// TestThresholdsPendingDowngrade: the terms in force at the instant given
// decide (a downgrade waiting for the period's end takes over from then).
func TestThresholdsPendingDowngrade(t *testing.T) {
	s := sub(pro)
	s.Next = &usage.Terms{From: period.End, PlanID: "free", Effective: free}
	rules := []notify.Rule{rule(notify.KindPercent, 100, "pro"), rule(notify.KindPercent, 100, "free")}
	if th := notify.Thresholds(s, rules, period, t0); len(th) != 1 || th[0].Calls != 100_000 {
		t.Errorf("before the downgrade: %+v; want pro's 100 %%", th)
	}
	next := usage.Period{Start: period.End, End: period.End.AddDate(0, 1, 0)}
	if th := notify.Thresholds(s, rules, next, next.Start); len(th) != 1 || th[0].Calls != 1000 {
		t.Errorf("after it: %+v; want free's 100 %%", th)
	}
}

// TestCallsForAmount finds the first billable call that costs an amount,
// for every price model, held to Price.Charge: the call before costs
// less.
func TestCallsForAmount(t *testing.T) {
	tiers := []usage.Tier{{UpTo: ptr(int64(1000)), UnitPrice: 50}, {UpTo: ptr(int64(10_000)), UnitPrice: 30}, {UnitPrice: 10, FlatPrice: 500}}
	prices := map[string]usage.Price{
		"per_unit":   {Model: usage.PricePerUnit, UnitSize: 1000, UnitPrice: 50, Currency: "usd"},
		"package":    {Model: usage.PricePackage, UnitSize: 1000, UnitPrice: 50, Currency: "usd"},
		"graduated":  {Model: usage.PriceGraduated, UnitSize: 1000, Tiers: tiers, Currency: "usd"},
		"volume":     {Model: usage.PriceVolume, UnitSize: 1000, Tiers: tiers, Currency: "usd"},
		"per_call_1": {Model: usage.PricePerUnit, UnitSize: 1, UnitPrice: 1, Currency: "usd"},
	}
	for name, pr := range prices {
		for _, amount := range []int64{1, 49, 50, 51, 99, 100, 1000, 12_345, 1_000_000} {
			calls, ok := notify.CallsForAmount(pr, amount)
			if !ok {
				t.Errorf("%s: %d never reached", name, amount)
				continue
			}
			at, err := pr.Charge(calls)
			if err != nil {
				t.Fatal(err)
			}
			if at.Amount < amount {
				t.Errorf("%s: %d calls cost %d < %d", name, calls, at.Amount, amount)
			}
			// No fewer calls reach it (checked around the answer and at
			// every tier's bounds below it).
			for _, c := range []int64{calls - 1, calls - 2, 1, 999, 1000, 1001, 9999, 10_000, 10_001} {
				if c < 1 || c >= calls {
					continue
				}
				if before, _ := pr.Charge(c); before.Amount >= amount {
					t.Errorf("%s: %d calls already cost %d ≥ %d, fewer than %d", name, c, before.Amount, amount, calls)
				}
			}
		}
	}
	// The volume price's bound: 1,000 calls cost 50, 1,001 (all at 30)
	// cost 30. 45 cents is first reached at the 890th call (44.5, rounded
	// half up); 51 cents only past the bound, at the 1,684th (50.52).
	if calls, _ := notify.CallsForAmount(prices["volume"], 45); calls != 890 {
		t.Errorf("volume, 45: %d calls; want 890", calls)
	}
	if calls, _ := notify.CallsForAmount(prices["volume"], 51); calls != 1684 {
		t.Errorf("volume, 51: %d calls; want 1,684", calls)
	}
	if _, ok := notify.CallsForAmount(usage.Price{Model: usage.PricePerUnit, UnitSize: 1000, UnitPrice: 0, Currency: "usd"}, 1); ok {
		t.Error("a free price reaches an amount")
	}
	// A price that cannot be priced (a plan row written by SQL off its
	// currency's step, or beyond the bounds) bills nothing, so it reaches
	// no amount: it was reached at the first call.
	for _, pr := range []usage.Price{
		{Model: usage.PricePackage, UnitSize: 1000, UnitPrice: 15, Currency: "kwd"},
		{Model: usage.PricePerUnit, UnitSize: 1, UnitPrice: usage.MaxCallPrice + 1, Currency: "usd"},
	} {
		if calls, ok := notify.CallsForAmount(pr, 1000); ok {
			t.Errorf("%+v: 1,000 reached at %d calls; want never, the price cannot be priced", pr, calls)
		}
	}
}

// TestPeriodOfDay: a day belongs to the period whose days hold it, for
// anchors at midnight and in the middle of a day.
func TestPeriodOfDay(t *testing.T) {
	for _, tt := range []struct {
		anchor, day, first, end string
	}{
		{"2000-01-01T00:00:00Z", "2026-03-15", "2026-03-01", "2026-04-01"},
		{"2000-01-01T00:00:00Z", "2026-03-31", "2026-03-01", "2026-04-01"},
		{"2026-01-10T00:00:00Z", "2026-03-09", "2026-02-10", "2026-03-10"},
		{"2026-01-10T00:00:00Z", "2026-03-10", "2026-03-10", "2026-04-10"},
		{"2026-01-10T10:00:00Z", "2026-03-10", "2026-03-10", "2026-04-10"},
		{"2026-01-31T00:00:00Z", "2026-04-30", "2026-04-30", "2026-05-31"},
	} {
		anchor, _ := time.Parse(time.RFC3339, tt.anchor)
		day, _ := time.Parse(time.DateOnly, tt.day)
		p := notify.PeriodOfDay(anchor, day)
		if got := p.FirstDay.Format(time.DateOnly) + " " + p.EndDay.Format(time.DateOnly); got != tt.first+" "+tt.end {
			t.Errorf("PeriodOfDay(%s, %s) = %s; want %s %s", tt.anchor, tt.day, got, tt.first, tt.end)
		}
		if p.FirstDay.After(day) || !day.Before(p.EndDay) {
			t.Errorf("PeriodOfDay(%s, %s): %s does not hold the day", tt.anchor, tt.day, p.FirstDay)
		}
	}
}

// TestRuleValidate bounds every kind.
func TestRuleValidate(t *testing.T) {
	for _, tt := range []struct {
		r     notify.Rule
		field string
	}{
		{rule(notify.KindPercent, 0, "free"), "value"},
		{rule(notify.KindPercent, 1001, "free"), "value"},
		{rule(notify.KindCalls, 0, ""), "value"},
		{rule(notify.KindOverage, -1, ""), "value"},
		{rule(notify.KindQuota, 1, "free"), "value"},
		{rule("sometimes", 1, "free"), "kind"},
		{notify.Rule{Kind: notify.KindCalls, Value: 1, UserID: "not a uuid"}, "user_id"},
		{notify.Rule{Kind: notify.KindCalls, Value: 1, UserID: user, Description: "bell\a"}, "description"},
	} {
		if err := tt.r.Validate(); usage.ErrorField(err) != tt.field {
			t.Errorf("Validate(%+v) = %v; want an error naming %s", tt.r, err, tt.field)
		}
	}
	if err := (notify.Rule{Kind: notify.KindCalls, Value: 1}).Validate(); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("a rule of no one: %v", err)
	}
	if err := rule(notify.KindPercent, 80, "free").Validate(); err != nil {
		t.Error(err)
	}
}

// TestCheckURL refuses what deliveries never go to outside the local
// stack: http, credentials, fragments, localhost, and private, loopback,
// link-local, reserved and mapped addresses.
func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://hooks.example.com/nexus":       true,
		"https://hooks.example.com:8443/a?b=c":  true,
		"https://93.184.215.14/hook":            true,
		"https://[2606:2800:21f:cb07::1]/hook":  true,
		"http://hooks.example.com/":             false,
		"ftp://hooks.example.com/":              false,
		"https://user:pw@hooks.example.com/":    false,
		"https://hooks.example.com/#frag":       false,
		"https://localhost/":                    false,
		"https://api.localhost./":               false,
		"https://127.0.0.1/":                    false,
		"https://10.0.0.8/":                     false,
		"https://172.20.1.1/":                   false,
		"https://192.168.1.1/":                  false,
		"https://100.64.0.1/":                   false,
		"https://169.254.169.254/latest":        false,
		"https://0.0.0.0/":                      false,
		"https://[::1]/":                        false,
		"https://[fd00::1]/":                    false,
		"https://[fe80::1]/":                    false,
		"https://[::ffff:127.0.0.1]/":           false,
		"https://[64:ff9b::a9fe:a9fe]/":         false,
		"https://[::1%25lo]/":                   false,
		"https://[fe80::1%25eth0]/":             false,
		"https://[fd00:ec2::254%25eth0]/":       false,
		"hooks.example.com":                     false,
		"":                                      false,
		"https://" + string(make([]byte, 2100)): false,
	} {
		if err := notify.CheckURL(u, false); (err == nil) != ok || (err != nil && usage.ErrorField(err) != "url") {
			t.Errorf("CheckURL(%q) = %v; want ok %v", u, err, ok)
		}
	}
	if err := notify.CheckURL("http://127.0.0.1:9999/hook", true); err != nil {
		t.Errorf("the local stack's receiver: %v", err)
	}
	if notify.Blocked(netip.MustParseAddr("8.8.8.8")) || !notify.Blocked(netip.MustParseAddr("::ffff:10.1.1.1")) {
		t.Error("Blocked misjudges a public address or a mapped private one")
	}
}

// TestEndpointInput: event types known and sorted, enabling clears the
// failure streak, disabling says why.
func TestEndpointInput(t *testing.T) {
	since := t0
	e := notify.Endpoint{URL: "https://a.example.com/", Enabled: false, DisabledReason: "every delivery failed since …", FailingSince: &since}
	got, err := notify.EndpointInput{EventTypes: &[]string{notify.EventQuota, notify.EventThreshold, notify.EventQuota}, Enabled: ptr(true)}.Apply(e, false)
	if err != nil || len(got.EventTypes) != 2 || got.EventTypes[0] != notify.EventQuota || !got.Enabled || got.DisabledReason != "" || got.FailingSince != nil {
		t.Errorf("Apply = %+v, %v", got, err)
	}
	if _, err := (notify.EndpointInput{EventTypes: &[]string{"usage.maybe"}}).Apply(e, false); usage.ErrorField(err) != "event_types" {
		t.Errorf("unknown event type: %v", err)
	}
	if got, _ := (notify.EndpointInput{Enabled: ptr(false)}).Apply(notify.Endpoint{URL: e.URL, Enabled: true}, false); got.DisabledReason == "" {
		t.Error("disabling gives no reason")
	}
	if !got.Wants(notify.EventQuota) || got.Wants(notify.EventOverage) || !(&notify.Endpoint{}).Wants(notify.EventOverage) {
		t.Error("Wants")
	}
}

// TestSecrets: whsec_ and 32 random bytes; a rotated secret signs beside
// the new one until its overlap ends.
func TestSecrets(t *testing.T) {
	a, _ := notify.NewSecret()
	b, _ := notify.NewSecret()
	if a == b || len(a) != len("whsec_")+44 {
		t.Fatalf("NewSecret = %q, %q", a, b)
	}
	if key, err := notify.SecretKey(a); err != nil || len(key) != 32 {
		t.Errorf("SecretKey = %d bytes, %v", len(key), err)
	}
	for _, bad := range []string{"", "whsec_", "sk_abc", "whsec_!!!", "whsec_" + "YWJj"} {
		if _, err := notify.SecretKey(bad); err == nil {
			t.Errorf("SecretKey(%q) accepted", bad)
		}
	}
	until := t0.Add(time.Hour)
	e := notify.Endpoint{Secret: b, PreviousSecret: a, PreviousExpiresAt: &until}
	if s := e.Secrets(t0); len(s) != 2 || s[0] != b || s[1] != a {
		t.Errorf("during the overlap: %v", s)
	}
	if s := e.Secrets(until); len(s) != 1 || s[0] != b {
		t.Errorf("after it: %v", s)
	}
}

// TestSchedule: Svix's schedule, spanning more than a day.
func TestSchedule(t *testing.T) {
	s := notify.DefaultSchedule
	if w, ok := s.After(0); !ok || w != 5*time.Second {
		t.Errorf("first retry after %s", w)
	}
	if _, ok := s.After(len(s)); ok {
		t.Error("the schedule never ends")
	}
	if _, ok := s.After(notify.ReplayStep); ok {
		t.Error("a replay is retried")
	}
	if s.Span() < 24*time.Hour || s.Span() != 27*time.Hour+35*time.Minute+5*time.Second {
		t.Errorf("span %s", s.Span())
	}
}

// TestEventBody: the Standard Webhooks payload, the same bytes each time.
func TestEventBody(t *testing.T) {
	e := notify.Event{ID: "x", Type: notify.EventQuota, At: t0, Data: json.RawMessage(`{"user_id":"u","used_calls":1000}`)}
	a, err := e.Body()
	b, _ := e.Body()
	want := `{"type":"usage.quota.reached","timestamp":"2026-03-15T12:00:00Z","data":{"user_id":"u","used_calls":1000}}`
	if err != nil || string(a) != want || string(b) != string(a) {
		t.Errorf("Body = %s, %v; want %s", a, err, want)
	}
	if e.MessageID() != "msg_x" {
		t.Errorf("MessageID %s", e.MessageID())
	}
}
