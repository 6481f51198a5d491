// Package rollup is the daily aggregation: the job (Job) that takes
// the job lock, reads the dirty marks the record path leaves (a user's
// day, or a day as a whole), recomputes those days through a Store
// (two at a time, a day split by user when few are dirty, one user's late
// events costing the other users' days nothing), creates raw partitions
// ahead and drops those past retention, and records the run. The rollup's
// rows (DailyRollup) and the endpoint cap (OtherEndpoint) are defined here;
// the reference computation the SQL is tested against is in rolluptest.
//
// It imports the vocabulary (shared/usage) and nothing else of this
// module; shared/postgres implements its Store.
package rollup
