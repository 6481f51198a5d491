package postgres

import (
	"encoding/binary"
	"time"
)

// copyData builds the input of a COPY … FROM STDIN WITH (FORMAT binary):
// PostgreSQL's binary COPY format, a header, then per row the number of
// fields and each field as its length and its bytes in the type's binary
// form (big-endian integers; uuid as its 16 bytes; timestamptz as
// microseconds since 2000-01-01 UTC), then a trailer.
type copyData struct{ b []byte }

// newCopyData starts the data of a COPY with room for about size bytes.
func newCopyData(size int) *copyData {
	c := &copyData{b: make([]byte, 0, size)}
	c.b = append(c.b, "PGCOPY\n\377\r\n\000"...)
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // flags
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // header extension length
	return c
}

// row starts a row of n fields.
func (c *copyData) row(n int) { c.b = binary.BigEndian.AppendUint16(c.b, uint16(n)) }

func (c *copyData) null() { c.b = binary.BigEndian.AppendUint32(c.b, 0xffffffff) }

func (c *copyData) uuid(u [16]byte) {
	c.b = binary.BigEndian.AppendUint32(c.b, 16)
	c.b = append(c.b, u[:]...)
}

func (c *copyData) text(s string) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(s)))
	c.b = append(c.b, s...)
}

func (c *copyData) int16(v int16) {
	c.b = binary.BigEndian.AppendUint32(c.b, 2)
	c.b = binary.BigEndian.AppendUint16(c.b, uint16(v))
}

func (c *copyData) int32(v int32) {
	c.b = binary.BigEndian.AppendUint32(c.b, 4)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(v))
}

func (c *copyData) int64(v int64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(v))
}

// pgEpochMicros is 2000-01-01 UTC, PostgreSQL's epoch, in microseconds of
// the Unix epoch.
const pgEpochMicros = 946_684_800 * 1_000_000

// timestamptz writes t, which must be whole microseconds (the column's
// resolution; see micros).
func (c *copyData) timestamptz(t time.Time) { c.int64(t.UnixMicro() - pgEpochMicros) }

// bytes ends the data and returns it.
func (c *copyData) bytes() []byte {
	return binary.BigEndian.AppendUint16(c.b, 0xffff)
}

// micros returns t cut to whole microseconds, the resolution PostgreSQL
// keeps, the same way whichever path writes it.
func micros(t time.Time) time.Time { return t.Truncate(time.Microsecond) }
