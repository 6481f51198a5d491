package stripebill

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/usage"
)

// TestNetworkErrorsInOurWords: a Stripe that cannot be reached is said so
// in our words on the ledger row, never with Go's error text; Stripe's own
// errors keep Stripe's code and message.
func TestNetworkErrorsInOurWords(t *testing.T) {
	// A port nobody listens on: connection refused. A privileged port, not a
	// closed listener's: the kernel hands that one out again, to the next
	// listener of this test or of another package's running beside it.
	refused := "http://127.0.0.1:1"
	// A server that hangs up without answering.
	hangup := newHangup(t)

	for _, tt := range []struct{ name, url, want string }{
		{"refused", refused, "create invoice item: could not reach Stripe: the connection was refused"},
		{"closed", hangup, "create invoice item: could not reach Stripe: the connection was closed before the answer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{Key: "sk_test_123", URL: tt.url, MaxNetworkRetries: 0})
			_, err := c.CreateInvoiceItem(context.Background(), &billing.InvoiceItem{LedgerID: "l", CustomerID: "cus_1", Amount: 1, Currency: "usd"}, "k")
			if usage.ErrorCode(err) != usage.CodeUnavailable {
				t.Fatalf("code %s (%v); want unavailable", usage.ErrorCode(err), err)
			}
			msg := usage.ErrorMessage(err)
			if !strings.HasPrefix(msg, "create invoice item: could not reach Stripe: ") || msg != tt.want {
				t.Errorf("message %q; want %q", msg, tt.want)
			}
			for _, leak := range []string{"dial", "tcp", "127.0.0.1", "EOF", "Post ", "context"} {
				if strings.Contains(msg, leak) {
					t.Errorf("message %q carries Go's error text (%s)", msg, leak)
				}
			}
		})
	}
}

func TestNetworkReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, "the request timed out"},
		{context.Canceled, "the run stopped before Stripe answered"},
		{&net.DNSError{Err: "no such host", Name: "api.stripe.test"}, "its host name did not resolve"},
		// Stripe hanging up while the request is still being written: the
		// transport has closed the connection, or the peer had.
		{&net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}, "the connection was closed before the answer"},
		{&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}, "the connection was closed before the answer"},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "the connection was closed before the answer"},
	} {
		if got := networkReason(tt.err); got != tt.want {
			t.Errorf("networkReason(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}

// newHangup serves connections that close without an answer.
func newHangup(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
