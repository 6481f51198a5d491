package billing_test

import "github.com/nexus/usage/shared/usage/usagetest"

// The plans' terms the billing tests bill under.
var (
	freePlan = usagetest.FreePlan
	proTerms = usagetest.ProPlan
	entTerms = usagetest.EnterprisePlan
)

func ptr[T any](v T) *T { return &v }
