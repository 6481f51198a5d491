package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/nexus/usage/shared/usage"
)

// Response is an API Gateway HTTP API (payload v2) response.
type Response = events.APIGatewayV2HTTPResponse

// Media types of the responses.
const (
	ContentJSON    = "application/json"
	ContentProblem = "application/problem+json"
	ContentCSV     = "text/csv; charset=utf-8"
)

// codes is the one table from application error codes to HTTP statuses.
var codes = map[string]int{
	usage.CodeInvalid:       http.StatusBadRequest,
	usage.CodeUnauthorized:  http.StatusUnauthorized,
	usage.CodeForbidden:     http.StatusForbidden,
	usage.CodeNotFound:      http.StatusNotFound,
	usage.CodeConflict:      http.StatusConflict,
	usage.CodeRateLimited:   http.StatusTooManyRequests,
	usage.CodeQuotaExceeded: http.StatusTooManyRequests,
	usage.CodeUnavailable:   http.StatusServiceUnavailable,
	usage.CodeTooLarge:      http.StatusRequestEntityTooLarge,
	usage.CodeInternal:      http.StatusInternalServerError,
}

// Status returns the HTTP status of an application error code; unknown
// codes are 500.
func Status(code string) int {
	if s, ok := codes[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Problem is an RFC 9457 problem details body. Type is a URN naming the
// application error code ("urn:nexus:problem:invalid"); Param names the
// request parameter or body field at fault, and InvalidParams repeats it
// in the RFC's "invalid-params" extension form.
type Problem struct {
	Type          string         `json:"type"`
	Title         string         `json:"title"`
	Status        int            `json:"status"`
	Detail        string         `json:"detail,omitempty"`
	Instance      string         `json:"instance,omitempty"`
	Param         string         `json:"param,omitempty"`
	InvalidParams []InvalidParam `json:"invalid-params,omitempty"`
	// RetryAfter is the Retry-After of a 503 (1 s when zero); it is a
	// header, not part of the body.
	RetryAfter time.Duration `json:"-"`
}

// InvalidParam is one entry of a problem's "invalid-params".
type InvalidParam struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// ProblemType returns the problem type URI of an application error code.
func ProblemType(code string) string { return "urn:nexus:problem:" + code }

// JSON returns a response with v encoded as JSON.
func JSON(status int, v any) Response {
	b, err := json.Marshal(v)
	if err != nil {
		// Only unsupported values fail, which is a programming error.
		return ProblemResponse(Problem{Type: ProblemType(usage.CodeInternal), Title: http.StatusText(500), Status: 500, Detail: "internal error"})
	}
	return Response{StatusCode: status, Headers: map[string]string{"Content-Type": ContentJSON}, Body: string(b)}
}

// CSV returns a text/csv response; filename, when set, names the download.
func CSV(status int, body, filename string) Response {
	h := map[string]string{"Content-Type": ContentCSV}
	if filename != "" {
		h["Content-Disposition"] = `attachment; filename="` + filename + `"`
	}
	return Response{StatusCode: status, Headers: h, Body: body}
}

// Challenge is the WWW-Authenticate header of every 401: a bearer token
// (JWT) or an API key.
const Challenge = "Bearer, ApiKey"

// ProblemResponse returns p as an application/problem+json response. A 401
// carries the WWW-Authenticate challenge and a 503 a Retry-After (p's, at
// least 1 s): every problem of a status has the same headers, whoever
// answers.
func ProblemResponse(p Problem) Response {
	b, _ := json.Marshal(p)
	h := map[string]string{"Content-Type": ContentProblem}
	switch p.Status {
	case http.StatusUnauthorized:
		h["WWW-Authenticate"] = Challenge
	case http.StatusServiceUnavailable:
		h["Retry-After"] = strconv.FormatInt(max(1, Seconds(p.RetryAfter)), 10)
	}
	return Response{StatusCode: p.Status, Headers: h, Body: string(b)}
}

// NewProblem builds the problem of a status that is not an application
// error (404 no route, 405, 413).
func NewProblem(status int, kind, detail string) Response {
	return ProblemResponse(Problem{Type: ProblemType(kind), Title: http.StatusText(status), Status: status, Detail: detail})
}

// Error returns the problem+json response of err. Application errors show
// their message; anything else is "internal error", logged here, once,
// with the request id. Unavailable errors are logged as warnings with
// their cause.
func Error(ctx context.Context, logger *slog.Logger, err error) Response {
	code := usage.ErrorCode(err)
	status := Status(code)
	p := Problem{Type: ProblemType(code), Title: http.StatusText(status), Status: status, Detail: usage.ErrorMessage(err),
		RetryAfter: usage.ErrorRetryAfter(err)}
	var ue *usage.Error
	if code == usage.CodeInternal || !errors.As(err, &ue) {
		p.Detail = "internal error"
	}
	if f := usage.ErrorField(err); f != "" {
		p.Param = f
		p.InvalidParams = []InvalidParam{{Name: f, Reason: p.Detail}}
	}
	if logger != nil {
		attrs := []any{"code", code, "status", status}
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			attrs = append(attrs, "request_id", lc.AwsRequestID)
		}
		switch {
		case status >= 500 && code != usage.CodeUnavailable:
			logger.ErrorContext(ctx, "request failed", append(attrs, "error", err.Error())...)
		case code == usage.CodeUnavailable:
			logger.WarnContext(ctx, "dependency unavailable", append(attrs, "error", err.Error())...)
		}
	}
	return ProblemResponse(p)
}
