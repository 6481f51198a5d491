package testkit

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// Logger is a logger for the services under test: text on stderr under
// go test -v, nothing otherwise.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
