package seed

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/usage"
)

// The local stack's JWT settings. The secret is public: it only ever signs
// tokens for this machine's stack (and the samples in events/).
const (
	JWTIssuer   = "https://auth.nexus.local/"
	JWTAudience = "nexus-usage"
	JWTSecret   = "nexus-dev-only-hmac-secret-0123456789abcdef"
)

// JWTConfig is the local stack's JWT authorizer: HS256 with JWTSecret.
func JWTConfig() auth.JWTConfig {
	return auth.JWTConfig{Issuer: JWTIssuer, Audience: JWTAudience, Algorithms: []string{"HS256"}, HMACSecret: []byte(JWTSecret)}
}

// Demo users have fixed ids, so that events/ and scripts can name them.
const (
	FreeUserID       = "11111111-1111-4111-8111-111111111111"
	ProUserID        = "22222222-2222-4222-8222-222222222222"
	EnterpriseUserID = "33333333-3333-4333-8333-333333333333"
	AdminUserID      = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
)

// SampleAPIKey stands for a real API key in the samples of events/: the
// emulator tests replace it with the pro user's key.
const SampleAPIKey = "nx_SAMPLE_replace_with_a_key_printed_by_make_dev_0000"

// User is a seeded user with its credentials.
type User struct {
	UserID           string `json:"user_id"`
	Plan             string `json:"plan"`
	IncludedCalls    int64  `json:"included_calls"`
	StripeCustomerID string `json:"stripe_customer_id,omitempty"`
	APIKey           string `json:"api_key,omitempty"`
	APIKeyID         string `json:"api_key_id,omitempty"`
	Token            string `json:"token"`
	// PeriodStart is the start of the current billing period; the period
	// before it is closed, so late events there are billed by overage.
	PeriodStart time.Time `json:"period_start"`
}

// Users creates the demo users: one each on free, pro and enterprise with
// an API key, a Stripe customer id and a subscription that started a month
// and two days ago: its first billing period ended two days ago, more than
// the overage job's 24-hour grace period, so the next run bills it; and an
// admin. It returns the three users and the admin.
// Pro and enterprise include fewer calls than their plans, so that demo
// traffic goes over quota within a minute. It is safe to run again.
func Users(ctx context.Context, db *postgres.DB, now time.Time) ([]User, User, error) {
	subs := postgres.NewSubscriptionStore(db)
	keys := postgres.NewAPIKeyStore(db)
	today := usage.Day(now)
	n := func(v int64) *int64 { return &v }
	specs := []struct {
		id, plan, customer string
		included           *int64
	}{
		{FreeUserID, usage.PlanFree, "cus_demo_free", nil},
		{ProUserID, "pro", "cus_demo_pro", n(500)},
		{EnterpriseUserID, "enterprise", "cus_demo_enterprise", n(1000)},
	}
	var users []User
	for _, s := range specs {
		sub := &usage.Subscription{UserID: s.id, PlanID: s.plan, StripeCustomerID: s.customer,
			Overrides: usage.Overrides{IncludedCalls: s.included}, PeriodAnchor: today.AddDate(0, -1, -2)}
		if err := subs.PutSubscription(ctx, sub); err != nil {
			return nil, User{}, fmt.Errorf("seed %s user: %w", s.plan, err)
		}
		got, err := subs.Subscription(ctx, s.id)
		if err != nil {
			return nil, User{}, fmt.Errorf("seed %s user: %w", s.plan, err)
		}
		secret, k, err := auth.NewAPIKey(s.id, "demo")
		if err != nil {
			return nil, User{}, err
		}
		if err := keys.CreateAPIKey(ctx, k); err != nil {
			return nil, User{}, fmt.Errorf("seed %s user's api key: %w", s.plan, err)
		}
		token, err := auth.Sign([]byte(JWTSecret), JWTIssuer, JWTAudience, s.id, false, now, 7*24*time.Hour)
		if err != nil {
			return nil, User{}, err
		}
		users = append(users, User{UserID: s.id, Plan: s.plan, IncludedCalls: got.Effective.IncludedCalls,
			StripeCustomerID: s.customer, APIKey: secret, APIKeyID: k.ID, Token: token,
			PeriodStart: usage.PeriodAt(got.PeriodAnchor, now).Start})
	}
	token, err := auth.Sign([]byte(JWTSecret), JWTIssuer, JWTAudience, AdminUserID, true, now, 7*24*time.Hour)
	if err != nil {
		return nil, User{}, err
	}
	return users, User{UserID: AdminUserID, Plan: "admin", Token: token}, nil
}
