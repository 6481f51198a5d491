package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nexus/usage/shared/notify"
)

// UserAgent is the User-Agent of every delivery.
const UserAgent = "NexusUsage-Webhooks/1.0"

// maxDrain bounds how much of an answer is read past the part the log
// keeps, so that the connection can be reused.
const maxDrain = 64 << 10

// Options configure a Client.
type Options struct {
	// AllowPrivate lets deliveries go to private, loopback and link-local
	// addresses: the local stack's receiver. Never in AWS.
	AllowPrivate bool
	// Timeout bounds one attempt (notify.AttemptTimeout when zero).
	Timeout time.Duration
	// TLS, when set, is the transport's TLS configuration (tests: a test
	// server's certificate).
	TLS *tls.Config
}

// Client signs and delivers webhooks (notify.Sender) over HTTP: one POST
// per attempt, bounded by the timeout, redirects never followed (a 3xx is
// a failed attempt), no proxy from the environment, and, unless
// AllowPrivate, no connection to an address notify.Blocked refuses: the
// check runs on the address each connection dials, after name resolution,
// so a host name that resolves (or is rebound) to a private address is
// refused too.
type Client struct {
	http    *http.Client
	timeout time.Duration
}

var _ notify.Sender = (*Client)(nil)

// errBlocked is the dialer's refusal of a blocked address.
type errBlocked struct{ addr netip.Addr }

func (e errBlocked) Error() string { return "blocked address " + e.addr.String() }

// New returns a client.
func New(o Options) *Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = notify.AttemptTimeout
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !o.AllowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			a, err := netip.ParseAddr(host)
			if err != nil || notify.Blocked(a) {
				return errBlocked{a}
			}
			return nil
		}
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       o.TLS,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       60 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Client{timeout: timeout, http: &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Send implements notify.Sender: one signed POST of r.
func (c *Client) Send(ctx context.Context, r notify.Request) notify.Result {
	start := time.Now()
	res := c.send(ctx, r)
	res.Latency = time.Since(start)
	return res
}

func (c *Client) send(ctx context.Context, r notify.Request) notify.Result {
	h, err := Headers(r)
	if err != nil {
		return notify.Result{Outcome: notify.OutcomeFailed, Answer: "the endpoint's secret cannot sign: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return notify.Result{Outcome: notify.OutcomeFailed, Answer: "the endpoint's URL is not one a request can go to"}
	}
	req.Header = h
	req.Header.Set("User-Agent", UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return c.failure(err)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, notify.MaxAnswer))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	answer := text(head)
	res := notify.Result{StatusCode: resp.StatusCode, Answer: answer, Outcome: notify.OutcomeFailed}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		res.Outcome = notify.OutcomeDelivered
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		res.Answer = fmt.Sprintf("answered %d, a redirect (to %q), which deliveries do not follow", resp.StatusCode, resp.Header.Get("Location"))
	}
	return res
}

// failure words an error of the request in our own words.
func (c *Client) failure(err error) notify.Result {
	var blocked errBlocked
	var dns *net.DNSError
	var cert *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	res := notify.Result{Outcome: notify.OutcomeFailed}
	switch {
	case errors.As(err, &blocked):
		res.Outcome = notify.OutcomeRefused
		res.Answer = fmt.Sprintf("refused: the endpoint's address %s is private, loopback, link-local or reserved; deliveries never go there", blocked.addr)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		res.Answer = fmt.Sprintf("no answer within %s", c.timeout)
	case errors.Is(err, context.Canceled):
		res.Answer = "the attempt was cancelled before the endpoint answered"
	case errors.As(err, &dns):
		res.Answer = "the endpoint's host name does not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		res.Answer = "the endpoint refused the connection"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		res.Answer = "the endpoint closed the connection without an answer"
	case errors.As(err, &cert) || errors.As(err, &unknownAuthority) || errors.As(err, &hostname):
		res.Answer = "the endpoint's TLS certificate is not valid for its host"
	default:
		res.Answer = "the endpoint could not be reached"
	}
	return res
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// text is the start of an answer's body as the log keeps it: valid UTF-8
// with its control characters (but newlines and tabs) replaced.
func text(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if !utf8.ValidString(s) {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= ' ' && r != 0x7f {
			return r
		}
		return '\uFFFD'
	}, s)
}
