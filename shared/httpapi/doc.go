// Package httpapi adapts API Gateway HTTP API (payload v2) events to the
// domain: a router over "METHOD /path/{param}" patterns that dispatches on
// the event's RouteKey or on its raw path, JSON and CSV responses,
// application/problem+json errors (RFC 9457) with the one table from
// usage error codes to HTTP statuses, the one set of rate limit headers of
// a usage.Decision (RateLimitHeaders, and Refusal for a 429), and query
// parameter parsing (UTC days, ranges, limits, opaque cursors). Every edge
// that answers HTTP (functions/analytics, shared/meter in both flavours)
// builds its errors and rate limit answers here, so they have one shape.
//
// Example routes requests and answers a bad parameter and an unknown path.
package httpapi
