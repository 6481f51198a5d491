package usage

import (
	"errors"
	"fmt"
	"time"
)

// Application error codes. They are the only vocabulary the edges (HTTP,
// SQS, Stripe) translate from; each edge keeps one table from code to its
// own representation.
const (
	CodeConflict      = "conflict"
	CodeInternal      = "internal"
	CodeInvalid       = "invalid"
	CodeNotFound      = "not_found"
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeRateLimited   = "rate_limited"
	CodeQuotaExceeded = "quota_exceeded"
	CodeUnavailable   = "unavailable"
	// CodeTooLarge is an input larger than its bound (a request body).
	CodeTooLarge = "too_large"
)

// Error is an application error: a code for machines and a message for
// people. Messages are safe to show to callers; internal causes are never
// carried in them.
type Error struct {
	Code    string
	Message string
	// Field names the input field at fault, when there is one.
	Field string
	// RetryAfter is how long the caller should wait before trying again
	// (CodeUnavailable); zero leaves it to the edge.
	RetryAfter time.Duration
}

// Error implements the error interface. Not used by the application otherwise.
func (e *Error) Error() string {
	return fmt.Sprintf("usage error: code=%s message=%s", e.Code, e.Message)
}

// ErrorCode unwraps an application error and returns its code. Non-application
// errors always return CodeInternal.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage unwraps an application error and returns its message.
// Non-application errors always return "internal error".
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorRetryAfter returns how long an application error asks the caller
// to wait, or 0.
func ErrorRetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrorField returns the field an application error names, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// Errorf is a helper function to return an Error with a given code and
// formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// NegativeSetting is the CodeInvalid error of a service's setting below
// zero, in the words every service's New uses: what the setting must be,
// its default and what it was. service names the package ("rollup").
func NegativeSetting(service, what string, v, deflt any) *Error {
	return Errorf(CodeInvalid, "%s: %s must be 0 (the default, %v) or more, not %v", service, what, deflt, v)
}

// FieldErrorf returns a CodeInvalid error naming the field at fault. The
// message starts with the field name.
func FieldErrorf(field string, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}
