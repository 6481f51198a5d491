package meter

import (
	"io"
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
		rw := &responseWriter{ResponseWriter: w}
		next.ServeHTTP(rw, r2)

		endpoint := r2.Pattern
		switch {
		case endpoint == "":
			endpoint = usage.NormalizeMethod(r.Method) + " " + r.URL.Path
		case !strings.Contains(endpoint, " "):
			endpoint = usage.NormalizeMethod(r.Method) + " " + endpoint
		}
		status := rw.status
		if status == 0 {
			status = http.StatusOK
		}
		m.publish(ctx, eventOf(id, endpoint, r.Method, status, start, m.now(),
			max(body.n, r.ContentLength), rw.n), m.flush)
	})
}

// write sends an API Gateway response through a net/http writer.
func write(w http.ResponseWriter, resp *httpapi.Response) {
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.WriteString(w, resp.Body)
}

// responseWriter records the status and the bytes written.
type responseWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
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
