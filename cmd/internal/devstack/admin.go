package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nexus/usage/cmd/internal/rie"
)

// serveAdmin serves the admin endpoint.
func (s *Stack) serveAdmin(context.Context) error {
	url, err := s.serve(s.cfg.AdminAddr, s.adminHandler())
	if err != nil {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	s.state.AdminURL = url
	return nil
}

// adminHandler serves GET /state, POST /run/{function}, GET /webhooks (what
// the webhook receiver got) and GET /healthz.
// A run's body is the function's input; without one, a scheduled
// function gets its schedule's input, any other {}.
func (s *Stack) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.State())
	})
	mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		got := s.receiver.received()
		if got == nil {
			got = []Received{}
		}
		_ = json.NewEncoder(w).Encode(got)
	})
	mux.HandleFunc("POST /run/{function}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("function")
		input, _ := io.ReadAll(io.LimitReader(r.Body, rie.MaxPayload))
		if len(strings.TrimSpace(string(input))) == 0 {
			input = []byte("{}")
			for _, j := range s.jobs {
				if j.Function == name {
					input = j.Input()
					break
				}
			}
		}
		if !json.Valid(input) {
			http.Error(w, "the body must be the function's JSON input", http.StatusBadRequest)
			return
		}
		if s.lambdas[name] == nil {
			http.Error(w, fmt.Sprintf("function %s is not running (%s)", name, s.state.Functions[name]), http.StatusServiceUnavailable)
			return
		}
		start := time.Now()
		out, err := s.Invoke(r.Context(), name, input)
		var fe *rie.FunctionError
		switch {
		case errors.As(err, &fe):
			s.logger.Error("run now failed", "function", name, "error", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write(out)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		s.logger.Info("run now", "function", name, "ms", time.Since(start).Milliseconds(), "result", truncate(string(out), 300))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
		fmt.Fprintln(w)
	})
	return mux
}

// FetchState reads a running stack's State from its admin endpoint (the
// URL of State.AdminURL).
func FetchState(ctx context.Context, admin string) (*State, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/state", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the stack's state: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("read the stack's state: %s: %s", resp.Status, b)
	}
	var st State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("read the stack's state: %w", err)
	}
	return &st, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
