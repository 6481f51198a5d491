package postgres

import (
	"bytes"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// batch is a batch ready to write: its events sorted by id (the order of
// a UUID's bytes, which is its text's), each id once (its first
// occurrence: the statement cannot tell which of two rows with the same
// key came first), their ids parsed and times cut to the microsecond, and
// its rejections.
type batch struct {
	events   []*usage.Event
	ids      []pgtype.UUID
	users    []pgtype.UUID
	keys     []pgtype.UUID
	times    []time.Time
	rejected []record.Rejection
	now      time.Time
	write    []int // the key store's generations of now (usage.KeyGenerations)
	older    int
}

func newBatch(events []usage.Event, rejected []record.Rejection, now time.Time, write []int, older int) (*batch, error) {
	type keyed struct {
		id [16]byte
		e  *usage.Event
	}
	all := make([]keyed, len(events))
	for i := range events {
		id, err := parseUUID("event_id", events[i].EventID)
		if err != nil {
			return nil, err
		}
		all[i] = keyed{id.Bytes, &events[i]}
	}
	slices.SortStableFunc(all, func(a, b keyed) int { return bytes.Compare(a.id[:], b.id[:]) })
	all = slices.CompactFunc(all, func(a, b keyed) bool { return a.id == b.id })
	n := len(all)
	b := &batch{events: make([]*usage.Event, n), ids: make([]pgtype.UUID, n), users: make([]pgtype.UUID, n), keys: make([]pgtype.UUID, n),
		times: make([]time.Time, n), rejected: rejected, now: now, write: write, older: older}
	for i, k := range all {
		e := k.e
		if err := fitsColumns(e); err != nil {
			return nil, err
		}
		var err error
		b.events[i], b.ids[i] = e, pgtype.UUID{Bytes: k.id, Valid: true}
		if b.users[i], err = parseUUID("user_id", e.UserID); err != nil {
			return nil, err
		}
		if e.APIKeyID != "" {
			if b.keys[i], err = parseUUID("api_key_id", e.APIKeyID); err != nil {
				return nil, err
			}
		}
		b.times[i] = micros(e.OccurredAt)
	}
	return b, nil
}

// parseUUID parses an id of an event, refusing, as the database would, one
// that is not a UUID: CodeInvalid naming the field. Valid events' ids are.
func parseUUID(field, s string) (pgtype.UUID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return pgtype.UUID{}, usage.FieldErrorf(field, "has a form the database does not accept")
	}
	return pgtype.UUID{Bytes: u, Valid: true}, nil
}

// keyData is the COPY data of the batch's ids in every generation of
// write, generation by generation, each in id order.
func (b *batch) keyData() []byte {
	c := newCopyData(32 * len(b.ids) * len(b.write))
	for _, g := range b.write {
		for _, id := range b.ids {
			c.row(2)
			c.int32(int32(g))
			c.uuid(id.Bytes)
		}
	}
	return c.bytes()
}

// rawData is the COPY data of the batch's raw rows.
func (b *batch) rawData() []byte {
	c := newCopyData(len(b.events) * 200)
	for i, e := range b.events {
		c.row(12)
		c.uuid(b.ids[i].Bytes)
		c.uuid(b.users[i].Bytes)
		if b.keys[i].Valid {
			c.uuid(b.keys[i].Bytes)
		} else {
			c.null()
		}
		c.text(e.Endpoint)
		c.text(e.Method)
		c.int16(int16(e.StatusCode))
		c.int32(int32(e.LatencyMS))
		c.int64(e.RequestBytes)
		c.int64(e.ResponseBytes)
		c.int32(int32(e.Quantity))
		c.timestamptz(b.times[i])
		c.timestamptz(b.now)
	}
	return c.bytes()
}

// countArgs are countSQL's parameters: the batch's sums per user and day,
// as recordBatchSQL sums the rows it inserts (calls and errors count
// quantity; bytes saturate at the bigint maximum), and the rejections.
func (b *batch) countArgs() []any {
	type userDay struct {
		user [16]byte
		day  time.Time
	}
	type sums struct{ calls, e4, e5, rq, rs int64 }
	at := map[userDay]int{}
	var keys []userDay
	var all []sums
	for i, e := range b.events {
		k := userDay{b.users[i].Bytes, usage.Day(b.times[i])}
		j, ok := at[k]
		if !ok {
			j = len(all)
			at[k] = j
			keys = append(keys, k)
			all = append(all, sums{})
		}
		s := &all[j]
		s.calls += e.Quantity
		switch {
		case e.StatusCode >= 400 && e.StatusCode <= 499:
			s.e4 += e.Quantity
		case e.StatusCode >= 500:
			s.e5 += e.Quantity
		}
		s.rq, s.rs = usage.AddSaturating(s.rq, e.RequestBytes), usage.AddSaturating(s.rs, e.ResponseBytes)
	}
	n := len(keys)
	users, days := make([]pgtype.UUID, n), make([]time.Time, n)
	calls, e4, e5, rq, rs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, k := range keys {
		users[i], days[i] = pgtype.UUID{Bytes: k.user, Valid: true}, k.day
		calls[i], e4[i], e5[i], rq[i], rs[i] = all[i].calls, all[i].e4, all[i].e5, all[i].rq, all[i].rs
	}
	r := b.rejectionArgs()
	return []any{users, days, calls, e4, e5, rq, rs, b.now, r.sources, r.msgIDs, r.positions, r.evIDs, r.fields, r.reasons, r.bodies}
}

// statementArgs are recordBatchSQL's parameters.
func (b *batch) statementArgs() []any {
	n := len(b.events)
	var (
		endpoints, methods    = make([]string, n), make([]string, n)
		statuses              = make([]int16, n)
		latencies, quantities = make([]int32, n), make([]int32, n)
		reqBytes, respBytes   = make([]int64, n), make([]int64, n)
	)
	for i, e := range b.events {
		endpoints[i], methods[i] = e.Endpoint, e.Method
		statuses[i] = int16(e.StatusCode)
		latencies[i], quantities[i] = int32(e.LatencyMS), int32(e.Quantity)
		reqBytes[i], respBytes[i] = e.RequestBytes, e.ResponseBytes
	}
	r := b.rejectionArgs()
	var next *int32
	if len(b.write) > 1 {
		g := int32(b.write[1])
		next = &g
	}
	return []any{b.ids, b.users, b.keys, endpoints, methods, statuses, latencies, reqBytes, respBytes, quantities, b.times,
		b.now, r.sources, r.msgIDs, r.positions, r.evIDs, r.fields, r.reasons, int32(b.write[0]), int32(b.older), next, r.bodies}
}

// rejectionArgs are the rejections' columns, as storable text.
type rejectionArgs struct {
	sources, msgIDs, evIDs, fields, reasons, bodies []string
	positions                                       []*int32
}

func (b *batch) rejectionArgs() rejectionArgs {
	m := len(b.rejected)
	r := rejectionArgs{sources: make([]string, m), msgIDs: make([]string, m), evIDs: make([]string, m), fields: make([]string, m),
		reasons: make([]string, m), bodies: make([]string, m), positions: make([]*int32, m)}
	for i, x := range b.rejected {
		r.sources[i] = x.Source
		if r.sources[i] == "" {
			r.sources[i] = record.RejectionSourceRecord
		}
		r.msgIDs[i], r.evIDs[i], r.fields[i] = record.SafeText(x.MessageID), record.SafeText(x.EventID), record.SafeText(x.Field)
		r.reasons[i], r.bodies[i] = record.SafeText(x.Reason), record.SafeText(x.Body)
		if x.MessageID != "" {
			p := int32(x.Position)
			r.positions[i] = &p
		}
	}
	return r
}

// fitsColumns refuses, as the database would, a value wider than its
// column (status_code smallint, latency_ms and quantity integer) instead
// of letting the conversion wrap it: CodeInvalid naming the field. Valid
// events always fit.
func fitsColumns(e *usage.Event) error {
	const what = "is out of the range the database stores"
	switch {
	case e.StatusCode < math.MinInt16 || e.StatusCode > math.MaxInt16:
		return usage.FieldErrorf("status_code", what)
	case e.LatencyMS < math.MinInt32 || e.LatencyMS > math.MaxInt32:
		return usage.FieldErrorf("latency_ms", what)
	case e.Quantity < math.MinInt32 || e.Quantity > math.MaxInt32:
		return usage.FieldErrorf("quantity", what)
	}
	return nil
}
