// Package meter is the middleware that puts a platform service behind the
// metering system, for net/http handlers and for aws-lambda-go API Gateway
// HTTP API (v2) handlers alike. For every request it
//
//  1. authenticates the caller through a usage.Authenticator (an API key
//     header or a JWT bearer with shared/auth); bad credentials get 401
//     problem+json;
//  2. asks the usage.LimitChecker for a decision (rate limit + quota); a
//     refusal is httpapi.Refusal, a 429 problem+json of type
//     urn:nexus:problem:rate_limited or urn:nexus:problem:quota_exceeded
//     with Retry-After; a limiter that cannot be reached is a 503 (fail
//     closed);
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
// headers of httpapi.RateLimitHeaders (RateLimit-Policy and RateLimit of
// draft-ietf-httpapi-ratelimit-headers, X-RateLimit-Limit, -Remaining and
// -Reset), and every error is the problem of httpapi.Error: the same
// headers and bodies as the analytics API's POST /v1/limits/check and its
// errors.
//
// Example_service is a service's whole wiring (net/http and API Gateway
// v2); ExampleMiddleware_HTTP and ExampleMiddleware_Lambda run the
// middleware on in-memory mocks.
package meter
