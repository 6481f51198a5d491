// Package demo drives a running local stack as its users and a platform
// would. Run (make demo) sends a minute of traffic through the sample
// platform API, from concurrent callers of the demo users (bursts above
// their rates, the free user past its hard quota, the pro and enterprise
// users into overage, a service in another language metering through POST
// /v1/limits/check and POST /v1/events), plus what the rest of a producer
// fleet sends through the usage queue (earlier calls, late, duplicated
// and invalid events), and reports what the callers saw, GET /v1/usage of
// each user, the free user against its overshoot bound, and the sample
// API's own timings. MeasureLag (make lag) times metered requests until
// GET /v1/usage counts them.
//
//	st, err := devstack.FetchState(ctx, "http://127.0.0.1:8081")
//	if err != nil { ... }
//	res, err := demo.Run(ctx, st, demo.Options{}, logger)
//	if err != nil { ... }
//	res.Print(os.Stdout)
package demo
