package stripebill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/usage"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/invoiceitem"
	"golang.org/x/time/rate"
)

// Config configures the client.
type Config struct {
	// Key is the Stripe secret key.
	Key string
	// URL overrides the API base URL (stripe-mock, a test server). A URL
	// unix:PATH sends plain HTTP through the Unix socket at PATH: how a
	// function in a container (sam local) reaches a stripe-mock on the
	// host's loopback, through a socket in its mounted directory.
	URL string
	// MaxNetworkRetries is how often stripe-go retries a request that failed
	// on the network, with 409, 429 or 5xx; it resends the same idempotency
	// key. Zero disables them.
	MaxNetworkRetries int64
	// RequestsPerSecond caps the requests sent (retries and list pages
	// included); zero or less means no limit. Burst defaults to 1.
	RequestsPerSecond float64
	Burst             int
	// HTTPClient defaults to one with an 80 s timeout, as stripe-go's.
	HTTPClient *http.Client
}

// Client creates and finds invoice items.
type Client struct {
	items invoiceitem.Client
}

var _ billing.Biller = (*Client)(nil)

// New returns a client for c.
func New(c Config) *Client {
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 80 * time.Second}
	}
	limit := rate.Inf
	if c.RequestsPerSecond > 0 {
		limit = rate.Limit(c.RequestsPerSecond)
	}
	burst := max(c.Burst, 1)
	limited := *hc
	base := hc.Transport
	url := c.URL
	if path, ok := strings.CutPrefix(url, "unix:"); ok {
		var d net.Dialer
		base = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}}
		url = "http://stripe.local"
	}
	if base == nil {
		base = http.DefaultTransport
	}
	limited.Transport = &limitedTransport{base: base, limiter: rate.NewLimiter(limit, burst)}
	bc := &stripe.BackendConfig{
		HTTPClient:        &limited,
		MaxNetworkRetries: stripe.Int64(c.MaxNetworkRetries),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		EnableTelemetry:   stripe.Bool(false),
	}
	if url != "" {
		bc.URL = stripe.String(url)
	}
	return &Client{items: invoiceitem.Client{B: stripe.GetBackendWithConfig(stripe.APIBackend, bc), Key: c.Key}}
}

// limitedTransport waits for the rate limiter before every request.
type limitedTransport struct {
	base    http.RoundTripper
	limiter *rate.Limiter
}

func (t *limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.limiter.Wait(r.Context()); err != nil {
		return nil, err
	}
	return t.base.RoundTrip(r)
}

// Metadata keys set on every invoice item.
const (
	MetaLedgerID    = "ledger_id"
	MetaUserID      = "user_id"
	MetaPeriodStart = "period_start"
	MetaSeq         = "seq"
)

// CreateInvoiceItem adds the item to the customer's subscription (its next
// invoice) with the amount and currency, the period (Stripe's end is
// inclusive, so the last second of the period) and metadata naming the
// ledger row.
func (c *Client) CreateInvoiceItem(ctx context.Context, item *billing.InvoiceItem, idempotencyKey string) (string, error) {
	if item.Amount <= 0 {
		return "", usage.Errorf(usage.CodeInvalid, "invoice item amount must be positive, got %d", item.Amount)
	}
	p := &stripe.InvoiceItemParams{
		Customer:    stripe.String(item.CustomerID),
		Amount:      stripe.Int64(item.Amount),
		Currency:    stripe.String(item.Currency),
		Description: stripe.String(item.Description),
		Period: &stripe.InvoiceItemPeriodParams{
			Start: stripe.Int64(item.Period.Start.Unix()),
			End:   stripe.Int64(item.Period.End.Unix() - 1),
		},
		Metadata: map[string]string{
			MetaLedgerID:    item.LedgerID,
			MetaUserID:      item.UserID,
			MetaPeriodStart: item.Period.Start.UTC().Format(time.DateOnly),
			MetaSeq:         strconv.Itoa(item.Seq),
		},
	}
	if item.SubscriptionID != "" {
		p.Subscription = stripe.String(item.SubscriptionID)
	}
	p.Context = ctx
	p.SetIdempotencyKey(idempotencyKey)
	ii, err := c.items.New(p)
	if err != nil {
		return "", convertError("create invoice item", err)
	}
	return ii.ID, nil
}

// FindInvoiceItems pages through the customer's invoice items created
// since the period started, newest first, and returns those whose metadata
// names the user and the period (any seq), oldest first. (Stripe's search
// API does not cover invoice items.) The metadata every item of this code
// carries names the period and the seq, so the items found are those of
// any ledger row of the period, however the ledger has lost track of them.
//
// A customer Stripe does not know (404, resource_missing: an id mistyped,
// which a create refused before an admin fixed the subscription and
// retried the row) holds no items: the answer is none, not an error, or
// the row would fail at every retry for the customer it was once sent to.
func (c *Client) FindInvoiceItems(ctx context.Context, customerID, userID string, period usage.Period) ([]billing.FoundItem, error) {
	p := &stripe.InvoiceItemListParams{Customer: stripe.String(customerID),
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: period.Start.Unix()}}
	items, err := c.list(ctx, p, func(f billing.FoundItem) bool { return f.UserID == userID && f.Period.Start.Equal(period.Start) })
	if se := (*stripe.Error)(nil); errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound && se.Code == stripe.ErrorCodeResourceMissing {
		return nil, nil
	}
	return items, convertError("list invoice items", err)
}

// ListInvoiceItems pages through every invoice item created since since,
// newest first, and returns those whose metadata names a ledger row,
// oldest first.
func (c *Client) ListInvoiceItems(ctx context.Context, since time.Time) ([]billing.FoundItem, error) {
	p := &stripe.InvoiceItemListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()}}
	items, err := c.list(ctx, p, func(billing.FoundItem) bool { return true })
	return items, convertError("list invoice items", err)
}

// list pages through the items p selects and returns those that name a
// ledger row and that keep accepts, oldest first, or Stripe's error as
// stripe-go gives it (the callers convert it).
func (c *Client) list(ctx context.Context, p *stripe.InvoiceItemListParams, keep func(billing.FoundItem) bool) ([]billing.FoundItem, error) {
	p.Limit = stripe.Int64(100)
	p.Context = ctx
	var out []billing.FoundItem
	it := c.items.List(p)
	for it.Next() {
		if f, ok := foundItem(it.InvoiceItem()); ok && keep(f) {
			out = append(out, f)
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// foundItem reads the ledger row an item's metadata names (CreateInvoiceItem
// writes it), and its period (Stripe's end is the period's last second);
// false for an item that names none: metadata this code does not write
// (a seq out of the ledger's range, 0 to the int32 maximum, or not as
// strconv.Itoa writes it) is another's, made by hand or by another
// integration, and no ledger row's.
func foundItem(ii *stripe.InvoiceItem) (billing.FoundItem, bool) {
	raw := ii.Metadata[MetaSeq]
	seq, err := strconv.Atoi(raw)
	if err != nil || seq < 0 || seq > math.MaxInt32 || strconv.Itoa(seq) != raw || ii.Metadata[MetaUserID] == "" || ii.Period == nil {
		return billing.FoundItem{}, false
	}
	f := billing.FoundItem{ID: ii.ID, LedgerID: ii.Metadata[MetaLedgerID], UserID: ii.Metadata[MetaUserID], Seq: seq,
		Period: usage.Period{Start: time.Unix(ii.Period.Start, 0).UTC(), End: time.Unix(ii.Period.End+1, 0).UTC()},
		Amount: ii.Amount, Currency: string(ii.Currency)}
	if f.Period.Start.Format(time.DateOnly) != ii.Metadata[MetaPeriodStart] {
		return billing.FoundItem{}, false
	}
	return f, true
}

// convertError is the one place where Stripe's errors become usage codes:
// network errors, 409 (a concurrent request with the same key), 429 and 5xx
// are retryable (CodeUnavailable, CodeRateLimited); 401 and 403 mean bad
// credentials (CodeUnauthorized, CodeForbidden); 404 is CodeNotFound; an
// idempotency key reused with other parameters is CodeConflict; every other
// 4xx (400, 402, …) is CodeInvalid. The message keeps Stripe's status, code
// and message, which are safe to store on the ledger row.
func convertError(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		return &usage.Error{Code: usage.CodeUnavailable, Message: fmt.Sprintf("%s: could not reach Stripe: %s", op, networkReason(err))}
	}
	msg := fmt.Sprintf("%s: stripe %d", op, se.HTTPStatusCode)
	if se.Code != "" {
		msg += " " + string(se.Code)
	}
	if se.Msg != "" {
		msg += ": " + se.Msg
	}
	code := usage.CodeInvalid
	switch s := se.HTTPStatusCode; {
	case s == http.StatusTooManyRequests:
		code = usage.CodeRateLimited
	case s >= 500 || s == 0:
		code = usage.CodeUnavailable
	case s == http.StatusConflict && se.Type != stripe.ErrorTypeIdempotency:
		code = usage.CodeUnavailable
	case se.Type == stripe.ErrorTypeIdempotency:
		code = usage.CodeConflict
	case s == http.StatusUnauthorized:
		code = usage.CodeUnauthorized
	case s == http.StatusForbidden:
		code = usage.CodeForbidden
	case s == http.StatusNotFound:
		code = usage.CodeNotFound
	}
	return &usage.Error{Code: code, Message: msg}
}

// networkReason says in our words why a request did not reach Stripe or
// its answer did not come back; the ledger row and the admin API show it,
// so it never carries Go's error text (addresses, types, wrapping).
func networkReason(err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "the request timed out"
	case errors.Is(err, context.Canceled):
		return "the run stopped before Stripe answered"
	case errors.As(err, &dnsErr):
		return "its host name did not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the connection was refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the connection was closed before the answer"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return "no connection could be made"
	case strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:"):
		return "the TLS handshake failed"
	}
	return "a network failure"
}
