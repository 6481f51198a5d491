// Package platform is the sample platform API of the local stack (make dev
// serves it on 127.0.0.1:8090): a small game catalogue built as a platform
// team builds a service that is metered by Nexus Usage. Its routes,
//
//	GET  /v1/games         the catalogue
//	GET  /v1/games/{id}    one game with its top scores
//	POST /v1/scores        submit a score: {"game_id": 1, "player": "ada", "score": 4200}
//	GET  /v1/flaky         an upstream that fails: every FlakyEvery-th call answers 503
//
// are a net/http ServeMux behind the real shared/meter middleware: API keys
// and JWTs through shared/auth (keys looked up in PostgreSQL, cached), the
// real limits.Limiter over postgres.RateStore (the rate limit and the hard
// quota, 429 with the rate limit headers), and the real shared/sqspub
// publisher sending one usage event per served request to the usage queue.
// Nothing in it is a stand-in: only the catalogue is sample data.
//
// Unmetered, beside them: GET /healthz, and GET /metrics, the timings the
// service records of every request (total, the bare handler's share, and
// so what the middleware, limiter and publisher add), its responses by
// status and its publisher's SendMessageBatch calls.
//
//	api, err := platform.New(ctx, platform.Config{DatabaseURL: url, SQS: client, QueueURL: queue, JWT: jwtCfg, Logger: logger})
//	if err != nil { ... }
//	defer api.Close(ctx) // flushes the usage events still buffered
//	http.ListenAndServe("127.0.0.1:8090", api)
package platform
