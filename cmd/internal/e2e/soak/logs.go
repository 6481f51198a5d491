package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"sync"
)

// Tally counts the failures the stack and the functions log during a run
// (a batch redelivered, and why), for the report: they say what each fault
// did. Numbers in the messages are folded into N, so that one cause is one
// line.
type Tally struct {
	mu     sync.Mutex
	counts map[string]int
}

// NewTally returns an empty tally.
func NewTally() *Tally { return &Tally{counts: map[string]int{}} }

var digits = regexp.MustCompile(`[0-9]+`)

func (t *Tally) add(key string) {
	key = digits.ReplaceAllString(key, "N")
	if len(key) > 160 {
		key = key[:160] + "…"
	}
	t.mu.Lock()
	t.counts[key]++
	t.mu.Unlock()
}

// Counts returns the failures counted so far, by cause.
func (t *Tally) Counts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.counts))
	for k, v := range t.counts {
		out[k] = v
	}
	return out
}

// Handler returns a slog.Handler for the stack's logger that counts its
// warnings and errors (message and error) and passes every record on to
// next (nil: nowhere).
func (t *Tally) Handler(next slog.Handler) slog.Handler {
	if next == nil {
		next = slog.DiscardHandler
	}
	return &tallyHandler{t: t, next: next}
}

type tallyHandler struct {
	t     *Tally
	next  slog.Handler
	attrs []slog.Attr
}

func (h *tallyHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *tallyHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		key := "stack: " + rec.Message
		find := func(a slog.Attr) bool {
			if a.Key == "error" {
				key += ": " + a.Value.String()
				return false
			}
			return true
		}
		for _, a := range h.attrs {
			find(a)
		}
		rec.Attrs(find)
		h.t.add(key)
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *tallyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &tallyHandler{t: h.t, next: h.next.WithAttrs(as), attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *tallyHandler) WithGroup(name string) slog.Handler {
	return &tallyHandler{t: h.t, next: h.next.WithGroup(name), attrs: h.attrs}
}

// FunctionLog wraps w, the stack's Config.FunctionLog (lines "name | …"),
// to count the functions' own errors (message and error) and warnings
// (message) from their JSON log lines; nil w discards the lines.
func (t *Tally) FunctionLog(w io.Writer) io.Writer {
	return &functionLog{t: t, w: w}
}

type functionLog struct {
	t *Tally
	w io.Writer
}

func (f *functionLog) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		name, rest, ok := bytes.Cut(line, []byte(" | "))
		if !ok || len(rest) == 0 || rest[0] != '{' {
			continue
		}
		var l struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		if json.Unmarshal(rest, &l) != nil {
			continue
		}
		fn := string(bytes.TrimSpace(name))
		switch l.Level {
		case "ERROR":
			f.t.add(fn + ": " + l.Msg + ": " + l.Error)
		case "WARN":
			f.t.add(fn + ": " + l.Msg)
		}
	}
	if f.w == nil {
		return len(p), nil
	}
	return f.w.Write(p)
}
