package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/usage"
)

// FormatError turns driver errors into application errors, so that the
// domain never sees pgx: no rows is CodeNotFound, a unique violation is
// CodeConflict naming the constraint, a check or foreign key violation is
// CodeInvalid, and a cancelled or timed-out query, a lost connection or
// one that cannot be made (the server down) is CodeUnavailable. Everything else keeps its cause (CodeInternal).
// Application errors pass through unchanged.
func FormatError(err error) error {
	if err == nil {
		return nil
	}
	var ue *usage.Error
	if errors.As(err, &ue) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return &usage.Error{Code: usage.CodeNotFound, Message: "not found"}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return &usage.Error{Code: usage.CodeConflict, Message: fmt.Sprintf("already exists (%s)", pgErr.ConstraintName)}
		case "23503": // foreign_key_violation
			return &usage.Error{Code: usage.CodeInvalid, Message: fmt.Sprintf("references a row that does not exist (%s)", pgErr.ConstraintName)}
		case "23514", "23502", "22P02": // check_violation, not_null_violation, invalid_text_representation
			if what := firstNonEmpty(pgErr.ConstraintName, pgErr.ColumnName); what != "" {
				return &usage.Error{Code: usage.CodeInvalid, Message: fmt.Sprintf("invalid value (%s)", what)}
			}
			return &usage.Error{Code: usage.CodeInvalid, Message: "invalid value"}
		case "40001", "40P01", "55P03", "57014": // serialization, deadlock, lock not available, query canceled
			return &wrapped{usage.Error{Code: usage.CodeUnavailable, Message: "database busy, retry"}, err}
		}
		if len(pgErr.Code) == 2+3 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "53" || pgErr.Code[:2] == "57") {
			return &wrapped{usage.Error{Code: usage.CodeUnavailable, Message: "database unavailable"}, err}
		}
		return err
	}
	var connectErr *pgconn.ConnectError
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.As(err, &connectErr) {
		return &wrapped{usage.Error{Code: usage.CodeUnavailable, Message: "database unavailable"}, err}
	}
	return err
}

// wrapped is an application error that keeps its cause for logs.
type wrapped struct {
	app   usage.Error
	cause error
}

func (w *wrapped) Error() string { return w.app.Error() + ": " + w.cause.Error() }

func (w *wrapped) Unwrap() []error { return []error{&w.app, w.cause} }

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
