package pgtest

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/postgres"
)

// AddCalls adds calls to a user's live counter of a day (negative: takes
// them away), as recording that many calls would: what the billing and
// the billing tests and the SAM CLI suite give their subscriptions to bill.
func AddCalls(ctx context.Context, db *postgres.DB, user string, day time.Time, calls int64) error {
	_, err := db.Pool.Exec(ctx, `INSERT INTO eco_usage_counter_slots (user_id, day, calls) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, day, slot) DO UPDATE SET calls = eco_usage_counter_slots.calls + excluded.calls`,
		user, day.Format(time.DateOnly), calls)
	return err
}
