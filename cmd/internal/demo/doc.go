// Package demo sends a minute's worth of realistic usage to a running
// local stack (make demo): the demo users' events through the usage queue
// with the real SQS publisher, late, duplicated and failing ones among
// them, and two invalid messages for the quarantine.
//
//	st, err := devstack.FetchState(ctx, "http://127.0.0.1:8081")
//	if err != nil { ... }
//	stats, err := demo.Send(ctx, st, time.Now().UTC(), logger)
//	if err != nil { ... }
//	stats.Report(os.Stdout, st, time.Now().UTC())
package demo
