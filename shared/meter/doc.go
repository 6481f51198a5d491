// Package meter is the middleware that puts a platform service behind the
// metering system, for net/http handlers and for aws-lambda-go API Gateway
// HTTP API (v2) handlers alike. For every request it
//
//  1. authenticates the caller through a usage.Authenticator (an API key
//     header or a JWT bearer with shared/auth);
//     bad credentials get 401 problem+json;
//  2. asks the usage.LimitChecker for a decision (rate limit + quota); a
//     refusal is 429 problem+json with Retry-After, whose type is
//     ProblemRateLimited or ProblemQuotaExceeded;
//  3. calls the wrapped handler with the identity in the context
//     (IdentityFrom);
//  4. publishes one usage.Event through the usage.Publisher: a UUIDv7 event
//     id, the real status code, the latency from the middleware's entry to
//     the handler's return, request and response bytes, and the route
//     template as the endpoint (the ServeMux pattern, or the API Gateway
//     route key).
//
// Refused and unauthenticated requests are not metered: they were not
// served. Every response that got a decision carries the rate limit
// headers (see SetHeaders), in the syntax of
// draft-ietf-httpapi-ratelimit-headers-10 (RateLimit-Policy and RateLimit
// as Structured Field lists with a quoted policy name, q and w; r and t;
// unchanged since -08), plus the widespread X-RateLimit-Limit,
// X-RateLimit-Remaining and X-RateLimit-Reset (delta seconds).
//
//	m := meter.New(&auth.Authenticator{Keys: auth.NewKeyCache(keys, 0, nil), JWT: jwt}, checker, publisher, meter.Options{Logger: logger})
//	http.ListenAndServe(addr, m.HTTP(mux))   // net/http
//	lambda.Start(m.Lambda(h.Handle))          // API Gateway v2
package meter
