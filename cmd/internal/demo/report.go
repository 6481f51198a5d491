package demo

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/usage"
)

// Print writes what the demo saw and where to look next.
func (r *Result) Print(w io.Writer) {
	st := r.State
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	callers := 0
	for _, row := range r.Rows {
		callers += row.Callers
	}
	f := r.Fleet
	p("make demo: %d callers for %.1f s through the sample platform API (%s),", callers, r.Traffic.Seconds(), st.PlatformURL)
	p("after %s events through the usage queue (%s duplicated, %s late, %s with error statuses) and %d invalid messages.",
		num(f.Events), num(f.Duplicates), num(f.Late), num(f.Errors), f.Invalid)
	p("")
	p("%-11s %-22s %7s %7s %9s %7s %6s %6s %17s %19s", "user", "via", "callers", "calls/s", "requests", "2xx", "4xx", "5xx", "429 rate_limited", "429 quota_exceeded")
	var all Counts
	for _, row := range r.Rows {
		c := row.Counts
		all.add(c)
		p("%-11s %-22s %7d %7s %9s %7s %6s %6s %17s %19s", row.User.Plan, row.Via, row.Callers, strconv.FormatFloat(row.Rate, 'f', -1, 64),
			num(c.Requests), num(c.OK), num(c.ClientErrors), num(c.ServerErrors), num(c.RateLimited), num(c.QuotaExceeded))
	}
	switch {
	case all.NoRetryAfter == 0 && all.NoHeaders == 0:
		p("Every 429 carried Retry-After, and every answer its decision's RateLimit-Policy, RateLimit and X-RateLimit-* headers.")
	default:
		p("%d 429s lacked Retry-After and %d answers lacked rate limit headers.", all.NoRetryAfter, all.NoHeaders)
	}
	if all.ReportsResent > 0 {
		p("%s reports of served calls (POST /v1/events, which costs the rate limit one call per event) were refused and sent again after their Retry-After.", num(all.ReportsResent))
	}
	if all.Failed > 0 {
		p("%d calls failed (no answer, or one the demo did not expect).", all.Failed)
	}
	p("")
	p("GET /v1/usage of each user, before and after the demo:")
	p("%-11s %9s %12s %11s %10s %5s  %-24s %s", "user", "included", "used before", "used after", "remaining", "hard", "overage to date", "projected at period end")
	for i, u := range st.Users {
		if i >= len(r.Before) || i >= len(r.After) {
			break
		}
		b, a := r.Before[i], r.After[i]
		hard := "no"
		if a.HardLimit {
			hard = "yes"
		}
		p("%-11s %9s %12s %11s %10s %5s  %-24s %s", u.Plan, num(a.Included), num(b.Used), num(a.Used), num(a.Remaining), hard,
			charge(a.OverageToDate), charge(a.Projected))
	}
	p("")
	r.printQuotas(p)
	p("")
	m := r.Metrics
	p("The sample API's own timings of the %s requests it answered during the traffic (server side):", num(m.Requests))
	p("  served   %7s: bare handler p50 %s, p99 %s; added by metering (auth, limiter, publish) p50 %s, p99 %s",
		num(m.Served.Count), us(m.Served.Handler.P50), us(m.Served.Handler.P99), us(m.Served.Added.P50), us(m.Served.Added.P99))
	p("  refused  %7s: answered by the middleware alone in p50 %s, p99 %s", num(m.Refused.Count), us(m.Refused.Total.P50), us(m.Refused.Total.P99))
	secs := r.Traffic.Seconds()
	p("  publisher: %s SendMessageBatch calls in %.1f s (%.1f/s at %.0f served requests/s), flush interval %s, %s events dropped",
		num(r.SendCalls), secs, float64(r.SendCalls)/secs, float64(m.Served.Count)/secs,
		seconds(m.Usage.FlushIntervalSeconds), num(m.Usage.Dropped))
	p("")
	r.printWebhooks(p)
	admin := st.Admin.Token
	p("Where to look next:")
	p("  curl -s -H 'X-Api-Key: %s' %s/v1/usage   (the free user; /v1/usage/daily, /endpoints, /keys too)", keyOf(st, seed.FreeUserID), st.GatewayURL)
	p("  curl -s %s/metrics   (the sample API's timings and publisher)", st.PlatformURL)
	p("  curl -s -H 'Authorization: Bearer %s' %s/v1/admin/rejected   (the invalid messages and why)", admin, st.GatewayURL)
	p("  make run-aggregate run-overage, then")
	p("  curl -s -H 'Authorization: Bearer %s' '%s/v1/admin/overage?period=%s'   (the closed period, billed)", admin, st.GatewayURL, st.ClosedPeriod)
	p("  make lag   (the time from a metered request to GET /v1/usage)")
	p("  curl -s -H 'Authorization: Bearer %s' %s/v1/admin/webhooks/deliveries   (the delivery log; POST /v1/admin/webhooks/replay)", admin, st.GatewayURL)
}

// printWebhooks lists the webhooks the receiver got and the time from
// each crossing call to its delivery.
func (r *Result) printWebhooks(p func(string, ...any)) {
	if r.State.ReceiverURL == "" {
		return
	}
	p("Webhooks the receiver (%s) got, signatures verified with its endpoint's secret:", r.State.ReceiverURL)
	p("%-11s %-24s %-10s %9s %9s %12s %9s  %s", "user", "type", "period", "threshold", "at calls", "received", "verified", "crossing call → delivery")
	for _, w := range r.Webhooks {
		th, lat, ver := "-", "-", "yes"
		if w.Percent > 0 {
			th = fmt.Sprintf("%d %%", w.Percent)
		}
		if !w.CrossingCall.IsZero() {
			lat = fmt.Sprintf("%.2f s", w.Latency.Seconds())
		}
		if !w.Verified {
			ver = "NO: " + w.Error
		}
		if w.Late {
			lat = "- (the closed period: crossed by the fleet's late events)"
		}
		if w.Duplicate {
			lat += " (again: a redelivery)"
		}
		p("%-11s %-24s %-10s %9s %9s %12s %9s  %s", w.Plan, w.Type, w.Period.Start.Format(time.DateOnly), th, num(w.ThresholdCalls),
			w.ReceivedAt.Local().Format("15:04:05.000"), ver, lat)
	}
	if len(r.Webhooks) == 0 {
		p("  none (is the deliver function running?)")
	}
	if ls := webhookLatencies(r.Webhooks); len(ls) > 0 {
		p("From the call that crossed a threshold to the webhook's arrival: median %.2f s, max %.2f s (%d events; the call's answer,",
			rank(ls, 0.5).Seconds(), rank(ls, 1).Seconds(), len(ls))
		p("then the sample API's flush, the usage queue's batch, the record transaction, the notify queue and the deliver function).")
	}
	p("")
}

// printQuotas says where the hard-quota users stopped against the bound,
// and how far the soft ones went into overage.
func (r *Result) printQuotas(p func(string, ...any)) {
	for i, u := range r.State.Users {
		if i >= len(r.Before) || i >= len(r.After) {
			break
		}
		b, a := r.Before[i], r.After[i]
		if a.HardLimit {
			bd := r.Bound
			p("The %s user's hard quota is %s calls. Overshoot bound: burst %d + ⌈%s/s × (limiter cache %s + lag %s)⌉ = %s calls",
				u.Plan, num(a.Included), bd.Burst, strconv.FormatFloat(bd.Rate, 'f', -1, 64), bd.TTL, bd.Lag, num(bd.Calls))
			p("  (lag = publisher flush %s + queue batching window %s + 1 s to record; one Limiter alone: 0).",
				seconds(r.State.PlatformFlushSeconds), seconds(r.State.BatchWindowSeconds))
			base := max(a.Included, b.Used)
			over := a.Used - a.Included
			verdict := "within the bound"
			if a.Used > base+bd.Calls {
				verdict = "OVER THE BOUND"
			}
			if over <= 0 {
				p("  It stopped at %s calls, at its quota.", num(a.Used))
			} else {
				p("  It stopped at %s calls: %s over its quota, %s.", num(a.Used), num(over), verdict)
			}
			continue
		}
		if a.Used > a.Included {
			p("The %s user used %s calls of %s included: %s calls of overage, %s so far, %s projected at the period's end (billed when it closes).",
				u.Plan, num(a.Used), num(a.Included), num(a.Used-a.Included), usage.FormatMoney(a.OverageToDate.Amount, a.OverageToDate.Currency),
				usage.FormatMoney(a.Projected.Amount, a.Projected.Currency))
		}
	}
}

// keyOf is the API key of a demo user.
func keyOf(st *devstack.State, id string) string {
	for _, u := range st.Users {
		if u.UserID == id {
			return u.APIKey
		}
	}
	return ""
}

// num formats n with thousands separators.
func num[T int | int64](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// us formats microseconds for people.
func us(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " µs"
}

// charge is a priced overage as the table shows it: "-" when nothing is
// billable.
func charge(c Charge) string {
	if c.Billable <= 0 {
		return "-"
	}
	return fmt.Sprintf("%s calls: %s", num(c.Billable), usage.FormatMoney(c.Amount, c.Currency))
}
