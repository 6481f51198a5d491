package meter

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

// HTTP wraps a net/http handler. Wrap either a whole ServeMux (the
// endpoint is then the pattern the mux matched, read after it served) or
// each route's handler.
func (m *Middleware) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := m.now()
		ctx := r.Context()
		id, hdr, refusal := m.decide(ctx, r.Header.Get, start)
		if refusal != nil {
			write(w, refusal)
			return
		}
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		body := &countingReader{ReadCloser: r.Body}
		r2 := r.WithContext(WithIdentity(ctx, id))
		if r.Body != nil && r.Body != http.NoBody {
			r2.Body = body
		}
		rw := &responseWriter{ResponseWriter: w, head: r.Method == http.MethodHead}
		served := false
		defer func() {
			// A handler that panicked served the call as far as it went
			// (the server aborts the answer): it is counted as a 500
			// unless its status was already sent, as the Lambda flavour
			// counts a handler's error, and the panic goes on to the
			// server.
			status := rw.status
			switch {
			case status == 0 && served:
				status = http.StatusOK
			case status == 0:
				status = http.StatusInternalServerError
			}
			m.publish(ctx, eventOf(id, endpointOf(r, r2), r.Method, status, start, m.now(),
				max(body.n, r.ContentLength), rw.n), m.flush)
		}()
		next.ServeHTTP(rw, r2)
		served = true
	})
}

// endpointOf is the endpoint of a served request: the pattern the mux
// matched (r2, after it served), else the path, after the method.
func endpointOf(r, r2 *http.Request) string {
	endpoint := r2.Pattern
	switch {
	case endpoint == "":
		endpoint = usage.NormalizeMethod(r.Method) + " " + r.URL.Path
	case !strings.Contains(endpoint, " "):
		endpoint = usage.NormalizeMethod(r.Method) + " " + endpoint
	}
	return endpoint
}

// write sends an API Gateway response through a net/http writer.
func write(w http.ResponseWriter, resp *httpapi.Response) {
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.WriteString(w, resp.Body)
}

// responseWriter records the status and the bytes written. It is an
// http.Flusher and an http.Hijacker whatever the server's writer is, as
// handlers that stream (server-sent events) or take the connection over
// (WebSocket) check with a type assertion; what the server's writer cannot
// do fails as http.ResponseController says (a Hijack error, a Flush that
// does nothing). Unwrap gives http.ResponseController the server's writer.
type responseWriter struct {
	http.ResponseWriter
	head   bool // a HEAD request: the server sends no body (RFC 9110)
	status int
	n      int64
}

func (w *responseWriter) WriteHeader(code int) {
	// An informational answer (103 Early Hints) comes before the one that
	// is the call's; 101 Switching Protocols is the last.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	if !w.head {
		w.n += int64(n)
	}
	return n, err
}

// Flush sends what is buffered, and the header (200 unless set) first.
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection to the handler. What it then writes is not
// seen: the call is counted as 101 Switching Protocols (a WebSocket's
// upgrade) unless a status was already written.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingReader counts the request body bytes the handler read.
type countingReader struct {
	io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}
