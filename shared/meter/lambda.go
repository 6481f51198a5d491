package meter

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

// LambdaHandler is an API Gateway HTTP API (payload 2.0) handler.
type LambdaHandler func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// Lambda wraps an API Gateway v2 handler. The endpoint is the route key
// ("GET /v1/games/{id}"); the publisher is flushed before returning. A
// handler error is metered as a 500 and returned unchanged; so is a
// panic, which goes on to the runtime.
func (m *Middleware) Lambda(next LambdaHandler) LambdaHandler {
	return func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		start := m.now()
		id, hdr, refusal := m.decide(ctx, (&httpapi.Request{Event: &req}).Header, start)
		if refusal != nil {
			return *refusal, nil
		}
		method := req.RequestContext.HTTP.Method
		endpoint := req.RouteKey
		if endpoint == "" || endpoint == "$default" {
			endpoint = usage.NormalizeMethod(method) + " " + req.RawPath
		}
		served := false
		defer func() {
			if !served {
				m.publish(ctx, eventOf(id, endpoint, method, http.StatusInternalServerError, start, m.now(),
					bodyBytes(req.Body, req.IsBase64Encoded), 0), true)
			}
		}()
		resp, err := next(WithIdentity(ctx, id), req)
		served = true
		if resp.Headers == nil {
			resp.Headers = map[string]string{}
		}
		for k, v := range hdr {
			resp.Headers[k] = v
		}
		status := resp.StatusCode
		if err != nil {
			status = http.StatusInternalServerError
		} else if status == 0 {
			status = http.StatusOK
		}
		respBytes := bodyBytes(resp.Body, resp.IsBase64Encoded)
		if method == http.MethodHead {
			respBytes = 0 // no body is sent for HEAD (RFC 9110)
		}
		m.publish(ctx, eventOf(id, endpoint, method, status, start, m.now(),
			bodyBytes(req.Body, req.IsBase64Encoded), respBytes), true)
		return resp, err
	}
}

// bodyBytes is the size of a body, decoded when it is base64.
func bodyBytes(body string, b64 bool) int64 {
	n := int64(len(body))
	if !b64 || n == 0 {
		return n
	}
	pad := int64(strings.Count(body[max(0, len(body)-2):], "="))
	return n/4*3 - pad
}

func eventOf(id usage.Identity, endpoint, method string, status int, start, end time.Time, reqBytes, respBytes int64) usage.Event {
	return usage.Event{
		UserID:        id.UserID,
		APIKeyID:      id.APIKeyID,
		Endpoint:      endpoint,
		Method:        method,
		StatusCode:    status,
		LatencyMS:     end.Sub(start).Milliseconds(),
		RequestBytes:  reqBytes,
		ResponseBytes: respBytes,
		OccurredAt:    start.UTC(),
	}
}
