package meter

import (
	"io"
	"net/http"
	"strings"
)

// HTTP wraps a net/http handler. Wrap either a whole ServeMux (the
// endpoint is then the pattern the mux matched, read after it served) or
// each route's handler.
func (m *Middleware) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := m.now()
		ctx := r.Context()
		id, hdr, ref := m.decide(ctx, r.Header.Get, start)
		if ref != nil {
			for _, kv := range ref.headers {
				w.Header().Set(kv[0], kv[1])
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(ref.problem.Status)
			_, _ = w.Write(ref.body())
			return
		}
		for _, kv := range hdr {
			w.Header().Set(kv[0], kv[1])
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
			endpoint = r.Method + " " + r.URL.Path
		case !strings.Contains(endpoint, " "):
			endpoint = r.Method + " " + endpoint
		}
		status := rw.status
		if status == 0 {
			status = http.StatusOK
		}
		m.publish(ctx, eventOf(id, endpoint, r.Method, status, start, m.now(),
			max(body.n, r.ContentLength), rw.n), m.flush)
	})
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
