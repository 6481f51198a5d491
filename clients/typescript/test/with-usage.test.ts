// withUsage's own rules, with a stand-in for POST /v1/limits/check (the
// stack's answers are in stack.test.ts): where the limit headers go, when
// a call is recorded and with what size, and the checks' timeout.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { DECLARED_BODY_MAX, LIMIT_HEADERS, Tracker, withUsage, type Logger, type Pending, type WireEvent } from "../src/index.js";

const quiet: Logger = { error() {}, warn() {}, info() {} };
const KEY = "nx_testkey12345";

const limits: Record<string, string> = {
  "RateLimit-Policy": '"burst";q=1000;w=2',
  RateLimit: '"burst";r=999;t=1',
  "X-RateLimit-Limit": "1000",
  "X-RateLimit-Remaining": "999",
  "X-RateLimit-Reset": "1",
};
const allowed = {
  allowed: true,
  reason: null,
  limit: 1000,
  remaining: 999,
  reset_seconds: 1,
  retry_after_seconds: 0,
  rate_per_second: 500,
  quota: { period: { start: "2026-12-01T00:00:00Z", end: "2027-01-01T00:00:00Z" }, included: 1000, used: 1, remaining: 999, hard: false },
};
/** checks answers every check with an allowed decision and the limit headers, and counts them. */
function checks(): { n: number; fetch: typeof fetch } {
  const c: { n: number; fetch: typeof fetch } = { n: 0, fetch: (async () => (c.n++, Response.json(allowed, { headers: limits }))) as typeof fetch };
  return c;
}

/** recorder is a tracker whose transport keeps what it is given. */
function recorder() {
  const seen: Pending[] = [];
  const tracker = new Tracker({ transport: { name: "spy", needs: "api_key", send: async (items) => (seen.push(...items), { retry: [], rejected: [] }) }, logger: quiet });
  return {
    tracker,
    async events(): Promise<WireEvent[]> {
      await tracker.flush();
      return seen.map((p) => p.wire);
    },
  };
}

const req = (path = "/api/x") => new Request("http://app.local" + path, { headers: { "X-Api-Key": KEY } });

function assertLimitHeaders(res: Response) {
  for (const name of LIMIT_HEADERS) assert.equal(res.headers.get(name), limits[name], name);
}

test("the limit headers: set on the handler's own Response, on a copy when its headers cannot change", async (t) => {
  const upstream = http.createServer((_, res) => res.writeHead(200, { "Content-Type": "text/plain", "X-Upstream": "yes" }).end("from upstream"));
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  t.after(() => upstream.close());
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;

  const r = recorder();
  const c = checks();
  const own = new Response("own", { headers: { "X-Own": "kept", "Content-Length": "3" } });
  const opts = { usageUrl: "http://usage.local", tracker: r.tracker, fetch: c.fetch, logger: quiet };

  const res = await withUsage(() => own, opts)(req());
  assert.equal(res, own, "the handler's Response (of declared size), its headers set in place");
  assertLimitHeaders(res);
  assert.equal(res.headers.get("X-Own"), "kept");
  assert.equal(await res.text(), "own");

  // A body of unknown size is passed on counted, in a new Response with the handler's headers and the limits.
  const counted = await withUsage(() => new Response("counted", { status: 201, headers: { "X-Own": "kept" } }), opts)(req());
  assert.equal(counted.status, 201);
  assertLimitHeaders(counted);
  assert.equal(counted.headers.get("X-Own"), "kept");
  assert.equal(await counted.text(), "counted");

  // fetch's Response has immutable headers: a copy around the same body.
  const proxied = await withUsage(() => fetch(upstreamUrl), opts)(req());
  assertLimitHeaders(proxied);
  assert.equal(proxied.headers.get("X-Upstream"), "yes");
  assert.equal(await proxied.text(), "from upstream");

  const redirect = await withUsage(() => Response.redirect("http://app.local/elsewhere", 307), opts)(req());
  assert.equal(redirect.status, 307);
  assert.equal(redirect.headers.get("Location"), "http://app.local/elsewhere");
  assertLimitHeaders(redirect);

  const events = await r.events();
  assert.deepEqual(events.map((e) => [e.status_code, e.response_bytes]), [[200, 3], [201, 7], [200, 13], [307, 0]]);
  assert.equal(c.n, 4);
});

test("a body of declared size is recorded when the handler returns; any other once it is sent, as sent", async () => {
  const r = recorder();
  const opts = { usageUrl: "http://usage.local", tracker: r.tracker, fetch: checks().fetch, route: "GET /api/x", logger: quiet };
  const stream = (sizes: number[]) =>
    new ReadableStream<Uint8Array>({ pull: (c) => { const n = sizes.shift(); if (n === undefined) c.close(); else c.enqueue(new Uint8Array(n)); } });

  // Declared: the declared size, recorded at once, the body passed on as it is.
  const declared = await withUsage(() => new Response(stream([300, 700]), { headers: { "Content-Length": "1000" } }), opts)(req());
  assert.equal(r.tracker.stats().recorded, 1, "recorded when the handler returned");
  assert.equal((await declared.arrayBuffer()).byteLength, 1000);

  // Undeclared (Response.json, a string): counted, recorded once read to the end.
  const json = await withUsage(() => Response.json({ a: "é" }), opts)(req());
  assert.equal(r.tracker.stats().recorded, 1, "not before its body is sent");
  assert.equal((await json.arrayBuffer()).byteLength, 10);
  assert.equal(r.tracker.stats().recorded, 2);

  // Declared but larger than DECLARED_BODY_MAX: counted as sent; the client leaves after one chunk.
  const big = DECLARED_BODY_MAX + 1;
  const large = await withUsage(() => new Response(stream([5000, big - 5000]), { headers: { "Content-Length": String(big) } }), opts)(req());
  assert.equal(r.tracker.stats().recorded, 2);
  const reader = large.body!.getReader();
  assert.equal((await reader.read()).value?.byteLength, 5000);
  await reader.cancel();

  // A malformed Content-Length is not believed.
  const odd = await withUsage(() => new Response(stream([42]), { headers: { "Content-Length": "1e3" } }), opts)(req());
  await odd.arrayBuffer();

  // No body: 0 bytes, at once.
  await withUsage(() => new Response(null, { status: 204 }), opts)(req());

  const events = await r.events();
  assert.deepEqual(events.map((e) => [e.status_code, e.response_bytes]), [[200, 1000], [200, 10], [200, 5000], [200, 42], [204, 0]]);
});

test("the call that fills a batch is read to its end before the batch's send starts: the send's work is not in its latency", async () => {
  const steps: string[] = [];
  const tracker = new Tracker({
    transport: { name: "spy", needs: "api_key", send: async (items) => (steps.push(`send ${items.length}`), { retry: [], rejected: [] }) },
    batchSize: 3,
    logger: quiet,
  });
  const wrapped = withUsage(() => Response.json({ ok: true }), { usageUrl: "http://usage.local", tracker, fetch: checks().fetch, route: "GET /api/x", logger: quiet });
  for (let i = 1; i <= 3; i++) {
    await (await wrapped(req())).arrayBuffer();
    steps.push(`read ${i}`);
  }
  await tracker.close();
  assert.deepEqual(steps, ["read 1", "read 2", "read 3", "send 3"]);
});

test("checks that start together share a timeout: each is aborted no sooner than its own timeout, a quick one is not", async () => {
  const r = recorder();
  let answered = 0;
  // A usage API that answers the third check at once and holds the others until they are aborted.
  const held = (async (_url: string, init: RequestInit) => {
    if (++answered === 3) return Response.json(allowed, { headers: limits });
    return new Promise<Response>((_, reject) => init.signal!.addEventListener("abort", () => reject(init.signal!.reason)));
  }) as unknown as typeof fetch;
  const timeoutMs = 100;
  const h = withUsage(() => new Response("served"), { usageUrl: "http://usage.local", tracker: r.tracker, fetch: held, timeoutMs, logger: quiet });
  const timed = async (delay: number) => {
    await new Promise((res) => setTimeout(res, delay));
    const t0 = performance.now();
    const res = await h(req());
    return { status: res.status, ms: performance.now() - t0 };
  };
  // The held checks are bare promises, and the timeouts' timers do not keep
  // a process alive (a real check's socket does): this one stands in.
  const alive = setTimeout(() => {}, 10_000);
  const got = await Promise.all([timed(0), timed(5), timed(8), timed(150)]);
  clearTimeout(alive);
  assert.deepEqual(got.map((g) => g.status), [503, 503, 200, 503]);
  for (const g of [got[0]!, got[1]!, got[3]!]) {
    assert.ok(g.ms >= timeoutMs - 1, `aborted after ${g.ms.toFixed(1)} ms, before its timeout`);
    assert.ok(g.ms < 10 * timeoutMs, `aborted after ${g.ms.toFixed(1)} ms`);
  }
});

test("measures an event cannot hold are clamped, never a reason to drop the call (the Go middleware's rule)", async (t) => {
  const r = recorder();
  const opts = { usageUrl: "http://usage.local", tracker: r.tracker, fetch: checks().fetch, route: "GET /api/x", logger: quiet };
  // A client may declare any Content-Length for a body the handler never reads.
  const declared = (v: string) => new Request("http://app.local/api/x", { headers: { "X-Api-Key": KEY, "Content-Length": v } });
  for (const v of ["99999999999999", "1099511627777", "1099511627776", "12"]) {
    await withUsage(() => new Response(null, { status: 204 }), opts)(declared(v));
  }
  // A call longer than an hour (a stream held open): the wrapper's clock jumps by two hours while the handler runs.
  const real = performance.now;
  t.after(() => void delete (performance as { now?: unknown }).now);
  await withUsage(() => {
    performance.now = () => real.call(performance) + 2 * 3_600_000;
    return new Response(null, { status: 204 });
  }, opts)(req());
  delete (performance as { now?: unknown }).now;
  assert.equal(r.tracker.stats().refused, 0, "no call refused for its measures");
  const events = await r.events();
  assert.deepEqual(events.map((e) => e.request_bytes), [2 ** 40, 2 ** 40, 2 ** 40, 12, 0]);
  assert.equal(events[4]!.latency_ms, 3_600_000);
});

test("a HEAD request is recorded when the handler returns: no body is sent for it, and servers (Next.js) never read it", async () => {
  const r = recorder();
  const tasks: (() => Promise<void>)[] = [];
  const opts = { usageUrl: "http://usage.local", tracker: r.tracker, fetch: checks().fetch, route: "GET /api/x", logger: quiet, after: (t: () => Promise<void>) => void tasks.push(t) };
  // Next.js answers HEAD with the GET handler and ends the response without reading its body.
  const res = await withUsage(() => Response.json({ id: 7 }), opts)(new Request("http://app.local/api/x", { method: "HEAD", headers: { "X-Api-Key": KEY } }));
  assert.equal(res.status, 200);
  assert.equal(r.tracker.stats().recorded, 1, "recorded when the handler returned");
  const settled = await Promise.race([tasks[0]!().then(() => "done"), new Promise((res) => setTimeout(res, 500, "pending"))]);
  assert.equal(settled, "done", "the after() task ends");
  const events = await r.events();
  assert.deepEqual(events.map((e) => [e.method, e.status_code, e.response_bytes]), [["HEAD", 200, 0]]);
});
