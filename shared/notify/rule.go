package notify

import (
	"strings"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Kinds of rules: what a rule's Value counts.
const (
	// KindPercent: Value percent of the period's included calls (1 to
	// MaxPercent).
	KindPercent = "percent"
	// KindCalls: Value calls in the period.
	KindCalls = "calls"
	// KindOverage: overage to date of Value, in the minor unit of the
	// plan's currency (cents for usd), priced as the overage job prices a
	// period under the terms in force.
	KindOverage = "overage"
	// KindQuota: the hard quota reached (a plan with a hard limit has used
	// all its included calls); Value is 0.
	KindQuota = "quota"
)

// Bounds of a rule.
const (
	MaxPercent = 1000
	// MaxRules bounds the rules of one plan or one user.
	MaxRules = 20
	// MaxDescription bounds descriptions (rules and endpoints), in bytes.
	MaxDescription = 200
	// MaxCalls bounds a calls rule: no billing period holds more calls
	// (3 × 10^18 at the record path's ceiling, README's bounds).
	MaxCalls = 1_000_000_000_000_000_000
)

// Rule is a threshold that raises an event the first time a user's usage
// in a billing period reaches it. A plan's rules (PlanID) are the defaults
// of every user on the plan; a user's own rules (UserID) come on top.
type Rule struct {
	ID          string    `json:"id"`
	PlanID      string    `json:"plan_id,omitempty"`
	UserID      string    `json:"user_id,omitempty"`
	Kind        string    `json:"kind"`
	Value       int64     `json:"value"`
	Enabled     bool      `json:"enabled"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// EventType is the type of the events the rule raises.
func (r Rule) EventType() string {
	switch r.Kind {
	case KindOverage:
		return EventOverage
	case KindQuota:
		return EventQuota
	}
	return EventThreshold
}

// Scope is "plan" for a plan's rule and "user" for a user's own.
func (r Rule) Scope() string {
	if r.PlanID != "" {
		return "plan"
	}
	return "user"
}

// RuleInput is what a caller sets on a rule; nil fields of an update keep
// the rule's value.
type RuleInput struct {
	Kind        *string `json:"kind"`
	Value       *int64  `json:"value"`
	Enabled     *bool   `json:"enabled"`
	Description *string `json:"description"`
}

// Apply returns r with in's fields set, validated. Errors are CodeInvalid
// naming the field.
func (in RuleInput) Apply(r Rule) (Rule, error) {
	if in.Kind != nil {
		r.Kind = *in.Kind
	}
	if in.Value != nil {
		r.Value = *in.Value
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	}
	if in.Description != nil {
		r.Description = *in.Description
	}
	return r, r.Validate()
}

// Validate reports the first field of r out of bounds (CodeInvalid naming
// it).
func (r Rule) Validate() error {
	switch r.Kind {
	case KindPercent:
		if r.Value < 1 || r.Value > MaxPercent {
			return usage.FieldErrorf("value", "a percent rule's value is a percentage of the included calls, 1 to %d", MaxPercent)
		}
	case KindCalls:
		if r.Value < 1 || r.Value > MaxCalls {
			return usage.FieldErrorf("value", "a calls rule's value is a number of calls, 1 to %d", MaxCalls)
		}
	case KindOverage:
		if r.Value < 1 || r.Value > usage.MaxFlatPrice {
			return usage.FieldErrorf("value", "an overage rule's value is an amount in the currency's minor unit, 1 to %d", usage.MaxFlatPrice)
		}
	case KindQuota:
		if r.Value != 0 {
			return usage.FieldErrorf("value", "a quota rule has no value (0)")
		}
	default:
		return usage.FieldErrorf("kind", "must be percent, calls, overage or quota")
	}
	if (r.PlanID == "") == (r.UserID == "") {
		return usage.Errorf(usage.CodeInvalid, "a rule belongs to a plan or to a user")
	}
	if r.UserID != "" && !usage.IsUUID(r.UserID) {
		return usage.FieldErrorf("user_id", "must be a UUID")
	}
	if err := checkText("description", r.Description); err != nil {
		return err
	}
	return nil
}

// checkText bounds a description and refuses control and invisible
// characters.
func checkText(field, s string) error {
	if len(s) > MaxDescription {
		return usage.FieldErrorf(field, "must be at most %d bytes", MaxDescription)
	}
	if strings.IndexFunc(s, func(r rune) bool { return !usage.PrintableRune(r) }) >= 0 {
		return usage.FieldErrorf(field, "must hold printable characters only")
	}
	return nil
}

// RuleFilter selects rules: a plan's (PlanID), a user's own (UserID),
// both, or all (neither). With WithPlan, a user's own and those of the
// plan it is on.
type RuleFilter struct {
	PlanID   *string
	UserID   *string
	WithPlan bool
}
