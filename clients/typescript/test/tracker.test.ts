// The tracker's own rules, on a transport of the test's (the transports
// themselves are proven against the real queue and API in stack.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_EVENTS_PER_MESSAGE,
  NOT_COUNTED,
  Tracker,
  eventsFromLog,
  isUUID,
  pack,
  toWire,
  uuidv7,
  type Logger,
  type Pending,
  type SendOutcome,
  type Transport,
} from "../src/index.js";

const USER = "22222222-2222-4222-8222-222222222222";

/** memoryLog keeps the lines jsonLogger would write. */
function memoryLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const w = (level: string) => (msg: string, fields: Record<string, unknown>) => lines.push(JSON.stringify({ level, msg, ...fields }));
  return { lines, error: w("error"), warn: w("warn"), info: w("info") };
}

/** scripted is a transport whose answers the test decides, and which keeps what it was given. */
function scripted(answer: (items: Pending[], call: number) => SendOutcome | Promise<SendOutcome>): Transport & { calls: Pending[][] } {
  const calls: Pending[][] = [];
  return {
    name: "test",
    needs: "user_id",
    calls,
    async send(items) {
      calls.push(items);
      return answer(items, calls.length);
    },
  };
}
const ok = (): SendOutcome => ({ retry: [], rejected: [] });
const ev = (i = 0) => ({ user_id: USER, endpoint: `GET /v1/games/${i}`, method: "GET", status_code: 200 });

test("uuidv7: version 7, RFC variant, time first, strictly increasing", () => {
  const t = Date.UTC(2026, 11, 7, 12);
  const ids = Array.from({ length: 10_000 }, () => uuidv7(t)); // one millisecond: the counter, then the next ms
  for (const id of ids) {
    assert.ok(isUUID(id) && id[14] === "7" && "89ab".includes(id[19]!), id);
  }
  assert.equal(parseInt(ids[0]!.replace(/-/g, "").slice(0, 12), 16), t);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `${ids[i]} after ${ids[i - 1]}`);
  assert.equal(new Set(ids).size, ids.length);
});

test("an event on the wire has Go's fields, in Go's order, and nothing else", () => {
  const now = Date.UTC(2026, 11, 7, 12);
  const w = toWire({ ...ev(), api_key_id: "AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA", latency_ms: 3, occurred_at: new Date(now - 1000) }, now, 35 * 86_400_000, true);
  assert.deepEqual(Object.keys(w), ["v", "event_id", "user_id", "api_key_id", "endpoint", "method", "status_code", "latency_ms",
    "request_bytes", "response_bytes", "quantity", "occurred_at"]);
  assert.equal(w.api_key_id, "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa");
  assert.equal(w.occurred_at, "2026-12-07T11:59:59.000Z");
  assert.equal(w.quantity, 1);
});

test("record refuses what the record path would quarantine, naming the field, and logs it whole", () => {
  const log = memoryLog();
  const tr = new Tracker({ transport: scripted(ok), logger: log });
  const bad = [
    { ...ev(), user_id: undefined },
    { ...ev(), status_code: 99.5 },
    { ...ev(), endpoint: "GET /\u0001" },
    { ...ev(), method: "get" },
    { ...ev(), quantity: 0 },
    { ...ev(), occurred_at: Date.now() + 600_000 },
    { ...ev(), event_id: "not-a-uuid" },
  ];
  for (const e of bad) assert.equal(tr.record(e), false);
  assert.equal(tr.stats().refused, bad.length);
  const fields = log.lines.map((l) => (JSON.parse(l) as { reason: string }).reason.split(":")[1]!.trim());
  assert.deepEqual(fields, ["user_id", "status_code", "endpoint", "method", "quantity", "occurred_at", "event_id"]);
  assert.ok(log.lines.every((l) => l.includes(NOT_COUNTED) && l.includes('"endpoint"')));
});

test("a latency with a fraction (a performance.now() difference) is counted, in whole milliseconds down", () => {
  const tr = new Tracker({ transport: scripted(ok), logger: memoryLog() });
  assert.equal(tr.record({ ...ev(), latency_ms: 12.7 }), true);
  const now = Date.now();
  assert.equal(toWire({ ...ev(), latency_ms: 12.7 }, now, 35 * 86_400_000, true).latency_ms, 12);
  assert.equal(toWire({ ...ev(), latency_ms: 0.4 }, now, 35 * 86_400_000, true).latency_ms, 0);
  assert.throws(() => toWire({ ...ev(), latency_ms: -0.5 }, now, 35 * 86_400_000, true), /latency_ms/);
  assert.throws(() => toWire({ ...ev(), latency_ms: Number.NaN }, now, 35 * 86_400_000, true), /latency_ms/);
});

test("a full buffer refuses, counts and logs the event whole (replayable)", async () => {
  const log = memoryLog();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const t = scripted(async () => (await gate, ok()));
  const tr = new Tracker({ transport: t, batchSize: 10, bufferSize: 20, logger: log });
  let accepted = 0;
  for (let i = 0; i < 25; i++) if (tr.record(ev(i))) accepted++;
  assert.equal(accepted, 20);
  assert.equal(tr.stats().refused, 5);
  const replay = eventsFromLog(log.lines.join("\n"));
  assert.equal(replay.length, 5);
  assert.deepEqual(replay.map((e) => e.endpoint), [20, 21, 22, 23, 24].map((i) => `GET /v1/games/${i}`));
  assert.ok(replay.every((e) => isUUID(e.event_id) && e.user_id === USER));
  release();
  await tr.close();
  assert.equal(tr.stats().sent, 20);
});

test("batches: a send at batchSize, and one after maxAgeMs for fewer", async () => {
  // No step here waits a wall-clock time that a loaded machine could
  // stretch past maxAgeMs: the full batch is sent in the macrotask after the
  // record (setImmediate), and the rest no sooner than maxAgeMs later.
  const t = scripted(ok);
  const tr = new Tracker({ transport: t, batchSize: 5, maxAgeMs: 300 });
  const turn = () => new Promise((r) => setImmediate(r));
  for (let i = 0; i < 5; i++) tr.record(ev(i));
  await turn();
  assert.deepEqual(t.calls.map((c) => c.length), [5]);
  const t0 = performance.now();
  for (let i = 5; i < 7; i++) tr.record(ev(i));
  await turn();
  assert.deepEqual(t.calls.map((c) => c.length), [5], "fewer than batchSize wait for maxAgeMs");
  while (t.calls.length < 2) await new Promise((r) => setTimeout(r, 10));
  const waited = performance.now() - t0;
  assert.ok(waited >= 290, `the 2 events were sent ${waited.toFixed(0)} ms after they were recorded; maxAgeMs is 300`);
  assert.deepEqual(t.calls.map((c) => c.length), [5, 2]);
  await tr.close();
});

test("a failed send is retried with the same event ids, then kept for the next flush", async () => {
  const log = memoryLog();
  const t = scripted((items, call) => (call <= 4 ? { retry: items, rejected: [], error: "down" } : ok()));
  const tr = new Tracker({ transport: t, maxAttempts: 3, backoffMs: 5, logger: log });
  for (let i = 0; i < 3; i++) tr.record(ev(i));
  await tr.flush();
  assert.equal(t.calls.length, 3);
  assert.deepEqual(tr.stats(), { recorded: 3, sent: 0, refused: 0, rejected: 0, lost: 0, pending: 3 });
  await tr.flush();
  assert.equal(tr.stats().sent, 3);
  const ids = t.calls.map((c) => c.map((p) => p.wire.event_id).join());
  assert.equal(new Set(ids).size, 1, "every try sends the same ids");
  assert.ok(log.lines.some((l) => l.includes("kept for the next flush")));
});

test("concurrent flushes share requests: one send takes all that is buffered", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const t = scripted(async (_, call) => (call === 1 ? (await gate, ok()) : ok()));
  const tr = new Tracker({ transport: t });
  tr.record(ev(0));
  const first = tr.flush();
  await new Promise((r) => setTimeout(r, 0)); // the first send is under way
  const waits: Promise<void>[] = [];
  for (let i = 1; i <= 20; i++) {
    tr.record(ev(i));
    waits.push(tr.flush());
  }
  release();
  await Promise.all([first, ...waits]);
  assert.deepEqual(t.calls.map((c) => c.length), [1, 20]);
  await tr.close();
});

test("close retries until its timeout, then counts and logs each unsent event whole", async () => {
  const log = memoryLog();
  const t = scripted((items) => ({ retry: items, rejected: [], error: "unreachable" }));
  const tr = new Tracker({ transport: t, backoffMs: 10, logger: log });
  for (let i = 0; i < 4; i++) tr.record(ev(i));
  const t0 = Date.now();
  await tr.close(200);
  const took = Date.now() - t0;
  assert.ok(took >= 150 && took < 30_000, `close took ${took} ms; its timeout is 200 ms`);
  assert.ok(t.calls.length >= 3, `${t.calls.length} tries`);
  assert.deepEqual({ ...tr.stats() }, { recorded: 4, sent: 0, refused: 0, rejected: 0, lost: 4, pending: 0 });
  assert.equal(eventsFromLog(log.lines.join("\n")).length, 4);
  assert.equal(tr.record(ev(9)), false, "a closed tracker takes nothing");
});

test("pack: at most 100 events a message and 10 messages or 256 KiB a batch, as the record function reads them", () => {
  const now = Date.now();
  const items = Array.from({ length: 2345 }, (_, i) => ({ wire: toWire(ev(i), now, 86_400_000, true) }));
  const { batches, tooBig } = pack(items);
  assert.equal(tooBig.length, 0);
  const msgs = batches.flat();
  assert.deepEqual(msgs.map((m) => m.items.length), [...Array(23).fill(MAX_EVENTS_PER_MESSAGE), 45]);
  assert.ok(batches.every((b) => b.length <= 10 && b.reduce((n, m) => n + Buffer.byteLength(m.body), 0) <= 256 * 1024));
  const back = msgs.flatMap((m) => JSON.parse(m.body) as unknown[]);
  assert.deepEqual(back, items.map((i) => i.wire));
  // Large events: the byte bound cuts first.
  const wide = Array.from({ length: 300 }, (_, i) => ({ wire: { ...items[i]!.wire, endpoint: "GET /" + "\u00e9".repeat(125) } }));
  const small = pack(wide, 16 * 1024);
  assert.ok(small.batches.flat().every((m) => Buffer.byteLength(m.body) <= 16 * 1024));
  assert.equal(small.batches.flat().reduce((n, m) => n + m.items.length, 0), 300);
});

test("close is bounded by its timeout even while a send waits out a long Retry-After or hangs", async () => {
  // A 429 asked for a minute; close cuts the wait short and sends again at once.
  const slow = scripted((items, call) => (call === 1 ? { retry: items, rejected: [], retryAfterMs: 60_000, error: "429" } : ok()));
  const a = new Tracker({ transport: slow, logger: memoryLog() });
  for (let i = 0; i < 3; i++) a.record(ev(i));
  void a.flush();
  await new Promise((r) => setTimeout(r, 20)); // the first send answered; the tracker waits
  let t0 = Date.now();
  await a.close(300);
  // Not a figure: a close that waited out the 429's minute takes 60 s, one that cut it short well under 30.
  assert.ok(Date.now() - t0 < 30_000, `close took ${Date.now() - t0} ms: it waited out the Retry-After; its timeout is 300 ms`);
  assert.equal(a.stats().sent, 3);

  // A send that never answers (a black-holed connection) is given up at the deadline, each event logged whole.
  const log = memoryLog();
  const hung: Transport = {
    name: "hung",
    needs: "user_id",
    send: (items, signal) =>
      new Promise<SendOutcome>((resolve) => signal?.addEventListener("abort", () => resolve({ retry: items, rejected: [], error: "aborted" }))),
  };
  const b = new Tracker({ transport: hung, logger: log });
  for (let i = 0; i < 3; i++) b.record(ev(i));
  void b.flush();
  await new Promise((r) => setTimeout(r, 20));
  const alive = setTimeout(() => {}, 60_000); // the hung send is a bare promise
  t0 = Date.now();
  // The race only turns a close that never ends into a failure; no figure is asserted.
  const closed = await Promise.race([b.close(300).then(() => "closed"), new Promise((r) => setTimeout(r, 30_000, "still open"))]);
  clearTimeout(alive);
  assert.equal(closed, "closed", `close(300) had not ended after ${Date.now() - t0} ms`);
  assert.deepEqual({ ...b.stats() }, { recorded: 3, sent: 0, refused: 0, rejected: 0, lost: 3, pending: 0 });
  assert.equal(eventsFromLog(log.lines.join("\n")).length, 3);
});

test("record never throws: an event that JSON cannot write (a BigInt, a cycle) is refused and logged whole by jsonLogger", (t) => {
  const lines: string[] = [];
  const real = console.error;
  console.error = (line: string) => void lines.push(line);
  t.after(() => (console.error = real));
  const tr = new Tracker({ transport: scripted(ok) });
  const cyclic: Record<string, unknown> = { user_id: USER, endpoint: "GET /v1/games/1", method: "GET", status_code: 200 };
  cyclic.occurred_at = cyclic;
  let got: boolean[] = [];
  assert.doesNotThrow(() => {
    got = [tr.record({ ...ev(), response_bytes: 5n as unknown as number }), tr.record(cyclic as never)];
  });
  console.error = real;
  assert.deepEqual(got, [false, false]);
  assert.equal(tr.stats().refused, 2);
  assert.equal(lines.length, 2);
  const logged = lines.map((l) => JSON.parse(l) as { msg: string; reason: string; event: Record<string, unknown> });
  assert.ok(logged.every((l) => l.msg === NOT_COUNTED), lines.join("\n"));
  assert.equal(logged[0]!.event.response_bytes, "5");
  assert.equal(logged[0]!.event.endpoint, "GET /v1/games/0");
  assert.equal(logged[1]!.event.endpoint, "GET /v1/games/1");
  assert.match(logged[0]!.reason, /response_bytes/);
});
