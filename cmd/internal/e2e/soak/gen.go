package soak

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/usage"
)

// class is what an event is meant to be.
type class int

const (
	classValid   class = iota // recorded and counted once
	classHostile              // recorded once or quarantined, never lost, never poisoning a batch
	classInvalid              // quarantined with its reason (queue) or refused at the edge (HTTP)
)

// path is the way an event takes into the system.
type path int

const (
	pathQueue path = iota // the usage queue: the SQS publisher, or a raw message
	pathHTTP              // POST /v1/events with an API key
)

func (p path) String() string { return [...]string{"queue", "HTTP"}[p] }

// The kinds of invalid and hostile events. Each is sent in turn, so that a
// run of a few hundred events holds every kind.
var (
	invalidQueueKinds = []string{"bad-event-id", "bad-user-id", "unknown-field", "bad-json", "status-out-of-range", "too-old"}
	// Through POST /v1/events the user comes from the API key and unknown
	// fields are ignored (the API document says so); bad JSON fails the
	// whole request.
	invalidHTTPKinds = []string{"bad-event-id", "bad-json", "status-out-of-range", "too-old"}
	hostileKinds     = []string{"max-bytes", "latency-max", "latency-huge", "bidi-zero-width", "long-endpoint", "nul", "method-foo"}
)

// invalidField is the field an invalid kind's rejection names ("" for a
// message refused as a whole).
var invalidField = map[string]string{
	"bad-event-id": "event_id", "bad-user-id": "user_id", "unknown-field": "colour", "bad-json": "",
	"status-out-of-range": "status_code", "too-old": "occurred_at",
}

// item is one event the producers made: its first copy, every occurred_at
// it was sent with, and what became of it at the edge.
type item struct {
	id     string // the event id as sent; "" for bad JSON
	ev     usage.Event
	class  class
	kind   string // invalid and hostile kinds; "" for valid events
	path   path
	late   bool
	stamps []time.Time // the occurred_at of every copy sent
	// raw is a queue event sent as a message of its own JSON, which the
	// publisher would refuse (invalid events, some hostile ones).
	raw bool
	// body is the raw message of a bad-JSON event, by which its rejection
	// is found.
	body string
	// HTTP: the edge's answer, "accepted", "rejected" (with param) or
	// "refused" (the request as a whole).
	edge, edgeParam string
	copies          int  // copies sent, replays included
	queued          bool // a copy went into the queue (the HTTP path: was accepted)
	// atEdge: accepted within EdgeMargin of the backfill window's edge
	// (sent during an outage, or put in the DLQ), recorded only if its age
	// is judged at its acceptance.
	atEdge bool
	// deadLettered: put in the DLQ by the soak, as an earlier outage's.
	deadLettered bool
}

// send is one copy of an item to send.
type send struct {
	it  *item
	at  time.Time // this copy's occurred_at
	dup bool
}

// generator makes the producers' events from a seeded RNG.
type generator struct {
	cfg      Config
	rng      *rand.Rand
	now      func() time.Time
	users    []string // the queue path's users
	httpUser identity // the API key's user on the HTTP path
	items    []*item
	dupable  [2][]*item // per path: the items a duplicate may repeat
	nInvalid [2]int
	nHostile [2]int
	forced   map[int]forced // by send number
	n        int            // sends made
	// edge is set during an outage: some valid queue events are then made
	// EdgeMargin inside the backfill window's edge.
	edge  bool
	nEdge int // such events made
}

// EdgeMargin is how far inside the backfill window's edge the events sent
// during an outage occurred: less than the outage holds them up, so that
// judged at their recording they would be too old.
const EdgeMargin = 10 * time.Second

// identity is the user and key that POST /v1/events records events under.
type identity struct{ userID, apiKeyID string }

var endpoints = []struct{ method, route string }{
	{"GET", "GET /v1/games/{id}"}, {"GET", "GET /v1/games"}, {"POST", "POST /v1/games"},
	{"GET", "GET /v1/teams/{id}"}, {"GET", "GET /v1/players"}, {"DELETE", "DELETE /v1/games/{id}"},
}

// lateMax is how old a late event may be: well inside the 35-day backfill
// window, so that a long run's redeliveries still find it acceptable.
const lateMax = 33 * 24 * time.Hour

func newGenerator(cfg Config, now func() time.Time, httpUser identity) *generator {
	g := &generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x50a6)), httpUser: httpUser, forced: map[int]forced{},
		// PostgreSQL keeps microseconds: so do the events, so that a row's
		// occurred_at can be compared with the copies'.
		now: func() time.Time { return now().Truncate(time.Microsecond) }}
	for range cfg.Users {
		g.users = append(g.users, g.uuid())
	}
	// Every kind on every path, however short the run: the kinds are sent
	// in turn, so as many sends of a class on a path as it has kinds, at
	// positions spread over the first 60 % of the run, hold each kind once
	// at least.
	var fs []forced
	if cfg.Hostile > 0 {
		for range hostileKinds {
			fs = append(fs, forced{pathQueue, classHostile})
			if cfg.HTTP > 0 {
				fs = append(fs, forced{pathHTTP, classHostile})
			}
		}
	}
	if cfg.Invalid > 0 {
		for range invalidQueueKinds {
			fs = append(fs, forced{pathQueue, classInvalid})
		}
		for range invalidHTTPKinds {
			if cfg.HTTP > 0 {
				fs = append(fs, forced{pathHTTP, classInvalid})
			}
		}
	}
	for i, f := range fs {
		g.forced[1+i*(cfg.Events*6/10)/len(fs)] = f
	}
	return g
}

// forced is a send of a given class on a given path.
type forced struct {
	path  path
	class class
}

// uuid returns a random version 4 UUID from the generator's RNG.
func (g *generator) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return uuid.UUID(b).String()
}

// next returns the next copy to send.
func (g *generator) next() send {
	g.n++
	if f, ok := g.forced[g.n]; ok {
		return g.fresh(f.path, f.class)
	}
	p := pathQueue
	if g.rng.Float64() < g.cfg.HTTP {
		p = pathHTTP
	}
	r := g.rng.Float64()
	switch {
	case r < g.cfg.Duplicates && len(g.dupable[p]) > 0:
		return g.duplicate(p)
	case r < g.cfg.Duplicates+g.cfg.Invalid:
		return g.fresh(p, classInvalid)
	case r < g.cfg.Duplicates+g.cfg.Invalid+g.cfg.Hostile:
		return g.fresh(p, classHostile)
	}
	return g.fresh(p, classValid)
}

// duplicate repeats an earlier event of the path, mostly a recent one, and
// re-stamps some copies with another occurred_at.
func (g *generator) duplicate(p path) send {
	c := g.dupable[p]
	i := g.rng.IntN(len(c))
	if g.rng.Float64() < 0.8 && len(c) > 1000 {
		i = len(c) - 1 - g.rng.IntN(1000)
	}
	it := c[i]
	at := it.stamps[0]
	if g.rng.Float64() < g.cfg.Restamp {
		at = g.restamp(at)
	}
	it.stamps = append(it.stamps, at)
	it.copies++
	return send{it: it, at: at, dup: true}
}

// restamp moves t by a second to three hours, staying inside the window
// of late events and never in the future.
func (g *generator) restamp(t time.Time) time.Time {
	d := time.Duration(1+g.rng.Int64N(3*3600*1e6)) * time.Microsecond
	now := g.now()
	if u := t.Add(d); !u.After(now) {
		return u
	}
	if u := t.Add(-d); u.After(now.Add(-lateMax)) {
		return u
	}
	return t.Add(-time.Second)
}

// fresh makes a new event of the class.
func (g *generator) fresh(p path, c class) send {
	now := g.now()
	at := now.Add(-time.Duration(g.rng.Int64N(int64(30*time.Minute/time.Microsecond))) * time.Microsecond)
	it := &item{class: c, path: p}
	if c == classValid && g.rng.Float64() < g.cfg.Late {
		at = now.Add(-24*time.Hour - time.Duration(g.rng.Int64N(int64((lateMax-24*time.Hour)/time.Microsecond)))*time.Microsecond)
		it.late = true
	}
	if c == classValid && p == pathQueue && g.edge && g.rng.Float64() < 0.2 {
		at = now.Add(-usage.DefaultBackfillWindow + EdgeMargin)
		it.late, it.atEdge = true, true
		g.nEdge++
	}
	ep := endpoints[g.rng.IntN(len(endpoints))]
	status := 200
	switch r := g.rng.IntN(100); {
	case r < 1:
		status = 503
	case r < 6:
		status = 404
	}
	e := usage.Event{Version: usage.EventVersion, EventID: g.uuid(), Endpoint: ep.route, Method: ep.method, StatusCode: status,
		LatencyMS: 1 + g.rng.Int64N(500), RequestBytes: 100 + g.rng.Int64N(2000), ResponseBytes: 200 + g.rng.Int64N(20000),
		Quantity: 1, OccurredAt: at}
	if p == pathHTTP {
		e.UserID, e.APIKeyID = g.httpUser.userID, g.httpUser.apiKeyID
	} else {
		e.UserID = g.users[g.rng.IntN(len(g.users))]
	}
	switch c {
	case classInvalid:
		kinds := invalidQueueKinds
		if p == pathHTTP {
			kinds = invalidHTTPKinds
		}
		it.kind = kinds[g.nInvalid[p]%len(kinds)]
		g.nInvalid[p]++
		e = g.makeInvalid(it, e)
	case classHostile:
		it.kind = hostileKinds[g.nHostile[p]%len(hostileKinds)]
		g.nHostile[p]++
		e = makeHostile(it.kind, e)
	}
	it.ev, it.id, it.stamps, it.copies = e, e.EventID, []time.Time{e.OccurredAt}, 1
	if p == pathQueue && c != classValid {
		// The publisher validates; what it would refuse goes as a
		// message of its own, as a producer not using it would send it.
		v := e
		it.raw = c == classInvalid || v.Validate(now, usage.DefaultBackfillWindow) != nil
	}
	if it.kind == "bad-json" {
		it.id = ""
		if p == pathQueue {
			it.body = fmt.Sprintf(`{"v":1,"event_id":%q,"user_id":%q,"endpoint":`, e.EventID, e.UserID)
		} else {
			it.body = fmt.Sprintf(`{"events":[{"event_id":%q,"endpoint":`, e.EventID)
		}
	}
	g.items = append(g.items, it)
	// An event at the window's edge is not sent again: a copy sent later
	// would be too old when sent.
	if c != classInvalid && !it.atEdge {
		g.dupable[p] = append(g.dupable[p], it)
	}
	return send{it: it, at: e.OccurredAt}
}

// deadLetter makes a valid queue event to put in the DLQ, occurred now
// (or, with edge, 2 s inside the backfill window's edge: only a redrive
// that carries its acceptance over records it).
func (g *generator) deadLetter(edge bool) send {
	s := g.fresh(pathQueue, classValid)
	it := s.it
	it.deadLettered, it.raw = true, true
	if edge {
		it.ev.OccurredAt = g.now().Add(-usage.DefaultBackfillWindow + 2*time.Second)
		it.stamps[0], it.late, it.atEdge = it.ev.OccurredAt, true, true
		// Not a duplicate source either.
		if d := g.dupable[pathQueue]; len(d) > 0 && d[len(d)-1] == it {
			g.dupable[pathQueue] = d[:len(d)-1]
		}
	}
	s.at = it.ev.OccurredAt
	return s
}

// makeInvalid breaks e the way the item's kind says (unknown-field is
// added when the event is encoded, bad-json is a body of its own).
func (g *generator) makeInvalid(it *item, e usage.Event) usage.Event {
	switch it.kind {
	case "bad-event-id":
		e.EventID = fmt.Sprintf("not-a-uuid-%d", g.rng.Uint64())
	case "bad-user-id":
		e.UserID = "nobody"
	case "status-out-of-range":
		e.StatusCode = 700
	case "too-old":
		e.OccurredAt = g.now().Add(-40 * 24 * time.Hour)
	}
	return e
}

// makeHostile gives e the hostile value of kind: values a careless or
// hostile caller sends, at the edge of what the types hold.
func makeHostile(kind string, e usage.Event) usage.Event {
	switch kind {
	case "max-bytes":
		e.RequestBytes, e.ResponseBytes = math.MaxInt64, math.MaxInt64
	case "latency-max":
		e.LatencyMS = math.MaxInt32
	case "latency-huge":
		e.LatencyMS = math.MaxInt64
	case "bidi-zero-width":
		e.Endpoint = "GET /v1/games/\u202e{id}\u200b\u2066"
	case "long-endpoint":
		// 300 bytes, a three-byte character at bytes 255-257: a cut at
		// byte 256 falls inside it.
		head := "GET /v1/" + strings.Repeat("a", 255-len("GET /v1/"))
		e.Endpoint = head + "€" + strings.Repeat("b", 300-len(head)-len("€"))
	case "nul":
		e.Endpoint = "GET /v1/games\x00/{id}"
	case "method-foo":
		e.Method = "FOO"
	}
	return e
}

// encode is the JSON of one copy of the item's event at time at, as a
// producer sends it.
func (it *item) encode(at time.Time) []byte {
	e := it.ev
	e.OccurredAt = at
	b, err := json.Marshal(e)
	if err != nil {
		panic(err) // usage.Event always marshals
	}
	if it.kind == "unknown-field" {
		b = append(b[:len(b)-1], `,"colour":"red"}`...)
	}
	return b
}
