// The package against the real local stack: the usage queue (moto_server,
// read by the record function under the Lambda emulator), POST /v1/events
// and POST /v1/limits/check (the analytics function behind the local API
// Gateway), PostgreSQL's counters read back through GET /v1/admin/users/{id}/usage.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { SQSClient } from "@aws-sdk/client-sqs";
import {
  NOT_COUNTED,
  Tracker,
  eventsFromLog,
  httpTransport,
  normalizeEndpoint,
  sqsTransport,
  withUsage,
  type Logger,
  type Pending,
  type Transport,
} from "../src/index.js";
import { Skip, drained, packageRoot, stack, used, user, waitUsed, type State } from "./stack.js";

const quiet: Logger = { error() {}, warn() {}, info() {} };

function sqsClient(st: State, endpoint = st.sqs_endpoint): SQSClient {
  return new SQSClient({ endpoint, region: st.region, credentials: { accessKeyId: "test", secretAccessKey: "test" }, maxAttempts: 1 });
}

/**
 * How long the tests wait for an exact count: a bound on liveness, not a
 * performance goal (the lag is measured and reported, never asserted).
 */
const lag = (_st: State) => 60_000;

/** spy keeps what a real transport was given. */
function spy(t: Transport): Transport & { seen: Pending[] } {
  const seen: Pending[] = [];
  return { name: t.name, needs: t.needs, seen, send: (items, signal) => (seen.push(...items), t.send(items, signal)) };
}

async function run(t: TestContext, f: (st: State) => Promise<void>) {
  let st: State;
  try {
    st = await stack(t);
  } catch (err) {
    if (err instanceof Skip) return;
    throw err;
  }
  await f(st);
}

test("queue: every event counted once, packed as the record function reads it; a replay counts nothing", (t) =>
  run(t, async (st) => {
    const pro = user(st, "pro");
    const before = await used(st, pro);
    const tracker = new Tracker({ transport: sqsTransport({ queueUrl: st.queue_url, client: sqsClient(st) }), logger: quiet });
    const endpoints = ["GET /v1/games/{id}", normalizeEndpoint("GET /v1/caf\u00e9/\u200b\u202e"), normalizeEndpoint("GET /" + "x".repeat(300))];
    for (let i = 0; i < 250; i++) {
      assert.ok(tracker.record({ user_id: pro.user_id, api_key_id: pro.api_key_id, endpoint: endpoints[i % 3]!, method: "GET", status_code: 200 + (i % 4) * 100, quantity: i < 10 ? 3 : 1 }));
    }
    const t0 = Date.now();
    await tracker.flush();
    await waitUsed(st, pro, before + 270, lag(st));
    t.diagnostic(`250 events (270 calls) counted ${Date.now() - t0} ms after the flush (batching window ${st.batch_window_seconds} s)`);
    assert.deepEqual({ ...tracker.stats(), pending: 0 }, { recorded: 250, sent: 250, refused: 0, rejected: 0, lost: 0, pending: 0 });

    // A producer that sends again (a retry after a lost answer) sends the same ids.
    const again = spy(sqsTransport({ queueUrl: st.queue_url, client: sqsClient(st) }));
    const replay = new Tracker({ transport: again, logger: quiet });
    const first = new Tracker({ transport: spy(sqsTransport({ queueUrl: st.queue_url, client: sqsClient(st) })), logger: quiet });
    first.record({ user_id: pro.user_id, endpoint: "GET /v1/replayed", method: "GET", status_code: 200 });
    await first.flush();
    const sent = (first.transport as ReturnType<typeof spy>).seen[0]!.wire;
    replay.record(sent);
    replay.record(sent);
    await replay.flush();
    assert.equal(again.seen.length, 2);
    await waitUsed(st, pro, before + 271, lag(st));
    // The replays went out after the first send: once the queue is empty
    // they have been read, and dropped as duplicates.
    await drained(st);
    assert.equal(await used(st, pro), before + 271, "the replayed event was counted again");
  }));

test("POST /v1/events: sent with the caller's key, split to the key's burst, retried after 429", (t) =>
  run(t, async (st) => {
    const free = user(st, "free"); // burst 10, 2 calls/s: 14 events cannot go at once
    const before = await used(st, free);
    const transport = spy(httpTransport({ baseUrl: st.gateway_url }));
    const tracker = new Tracker({ transport, logger: quiet, maxAttempts: 10 });
    for (let i = 0; i < 14; i++) tracker.record({ endpoint: "GET /v1/reported", method: "GET", status_code: 200 }, free.api_key);
    const t0 = Date.now();
    await tracker.flush();
    t.diagnostic(`14 events sent in ${Date.now() - t0} ms`);
    assert.equal(tracker.stats().sent, 14);
    await waitUsed(st, free, before + 14, lag(st));

    const bad = new Tracker({ transport: httpTransport({ baseUrl: st.gateway_url }), logger: quiet });
    bad.record({ endpoint: "GET /v1/reported", method: "GET", status_code: 200 }, "nx_notakey");
    await bad.flush();
    assert.equal(bad.stats().rejected, 1, "a refused key is not retried forever");
  }));

/** checks counts the limit checks a wrapper makes. */
function counting(): { fetch: typeof fetch; checks: number } {
  const c = {
    checks: 0,
    fetch: ((input: string | URL | Request, init?: RequestInit) => {
      if (String(input).endsWith("/v1/limits/check")) c.checks++;
      return fetch(input, init);
    }) as typeof fetch,
  };
  return c;
}

const POLICY = /^"burst";q=(\d+);w=(\d+), "quota";q=(\d+);w=(\d+)$/;
const LIMIT = /^"burst";r=(\d+);t=(\d+), "quota";r=(-?\d+);t=(\d+)$/;

/** limitHeaders checks the Go middleware's rate limit headers and returns the burst's numbers. */
function limitHeaders(res: Response): { q: number; r: number; t: number } {
  const policy = POLICY.exec(res.headers.get("RateLimit-Policy") ?? "");
  const limit = LIMIT.exec(res.headers.get("RateLimit") ?? "");
  assert.ok(policy, `RateLimit-Policy: ${res.headers.get("RateLimit-Policy")}`);
  assert.ok(limit, `RateLimit: ${res.headers.get("RateLimit")}`);
  assert.equal(res.headers.get("X-RateLimit-Limit"), policy[1]);
  assert.equal(res.headers.get("X-RateLimit-Remaining"), limit[1]);
  assert.equal(res.headers.get("X-RateLimit-Reset"), limit[2]);
  return { q: Number(policy[1]), r: Number(limit[1]), t: Number(limit[2]) };
}

test("withUsage: one check, the middleware's headers, the real status, latency and bytes recorded after the body", (t) =>
  run(t, async (st) => {
    const pro = user(st, "pro");
    const before = await used(st, pro);
    const transport = spy(httpTransport({ baseUrl: st.gateway_url }));
    const tracker = new Tracker({ transport, logger: quiet });
    const c = counting();
    let tasks: (() => Promise<void>)[] = [];
    const handler = withUsage(
      async (req: Request) => {
        await req.text();
        await new Promise((r) => setTimeout(r, 30));
        const chunks = [new Uint8Array(1000), new Uint8Array(3000), new Uint8Array(1000)];
        return new Response(new ReadableStream({ pull: (ctl) => { const next = chunks.shift(); if (next) ctl.enqueue(next); else ctl.close(); } }),
          { status: 201, headers: { "Content-Type": "application/octet-stream", "X-Own": "kept" } });
      },
      { usageUrl: st.gateway_url, tracker, route: "/api/games/{id}", fetch: c.fetch, after: (task) => void tasks.push(task), logger: quiet },
    );
    const res = await handler(new Request("http://app.local/api/games/42", { method: "post", headers: { "X-Api-Key": pro.api_key, "Content-Length": "77" }, body: "x".repeat(77) }));
    assert.equal(res.status, 201);
    assert.equal(res.headers.get("X-Own"), "kept");
    assert.equal(limitHeaders(res).q, 100, "the pro plan's burst");
    assert.equal(c.checks, 1);
    assert.equal(tracker.stats().recorded, 0, "recorded only once the body is sent");
    assert.equal((await res.arrayBuffer()).byteLength, 5000);
    assert.equal(tasks.length, 1);
    await Promise.all(tasks.map((f) => f())); // what after() runs: the record is done, the flush sends it
    assert.equal(transport.seen.length, 1);
    const e = transport.seen[0]!.wire;
    assert.equal(e.endpoint, "POST /api/games/{id}");
    assert.equal(e.method, "POST");
    assert.equal(e.status_code, 201);
    assert.equal(e.response_bytes, 5000);
    assert.equal(e.request_bytes, 77);
    assert.ok(e.latency_ms >= 30 && e.latency_ms < 5000, `latency ${e.latency_ms}`);
    assert.equal(transport.seen[0]!.apiKey, pro.api_key);

    // A handler that throws is a 500; a body the client abandons counts what was sent.
    tasks = [];
    const failing = withUsage(() => { throw new Error("boom"); }, { usageUrl: st.gateway_url, tracker, route: "GET /api/fail", after: (task) => void tasks.push(task), logger: quiet });
    await assert.rejects(failing(new Request("http://app.local/api/fail", { headers: { "X-Api-Key": pro.api_key } })), /boom/);
    await Promise.all(tasks.map((f) => f()));
    assert.equal(transport.seen[1]!.wire.status_code, 500);
    await waitUsed(st, pro, before + 2, lag(st));
  }));

test("withUsage: a refusal is answered with 429 problem+json and Retry-After, and not counted", (t) =>
  run(t, async (st) => {
    const free = user(st, "free");
    const seen = spy(httpTransport({ baseUrl: st.gateway_url }));
    const tracker = new Tracker({ transport: seen, logger: quiet });
    let served = 0;
    const handler = withUsage(() => (served++, Response.json({ ok: true })), { usageUrl: st.gateway_url, tracker, route: "GET /api/ping", logger: quiet });
    const answers: Response[] = [];
    for (let i = 0; i < 15; i++) answers.push(await handler(new Request("http://app.local/api/ping", { headers: { "X-Api-Key": free.api_key } })));
    const refused = answers.filter((r) => r.status === 429);
    assert.ok(refused.length > 0, "15 calls at once pass a burst of 10");
    assert.equal(served + refused.length, 15);
    for (const r of answers) limitHeaders(r);
    for (const r of refused) {
      assert.equal(r.headers.get("Content-Type"), "application/problem+json");
      assert.ok(Number(r.headers.get("Retry-After")) >= 1);
      const p = (await r.json()) as { type: string; title: string; status: number; detail: string };
      assert.equal(p.type, "urn:nexus:problem:rate_limited");
      assert.equal(p.status, 429);
      assert.match(p.detail, /^rate limit of 10 calls at 2\/s exceeded; retry in \d+ s$/);
    }
    await Promise.all(answers.filter((r) => r.status !== 429).map((r) => r.arrayBuffer()));
    assert.equal(tracker.stats().recorded, served);
  }));

test("withUsage: bad credentials get the check's 401", (t) =>
  run(t, async (st) => {
    const tracker = new Tracker({ transport: httpTransport({ baseUrl: st.gateway_url }), logger: quiet });
    let served = 0;
    const handler = withUsage(() => (served++, new Response("no")), { usageUrl: st.gateway_url, tracker, logger: quiet });
    for (const headers of [{}, { "X-Api-Key": "nx_wrong" }, { Authorization: "Bearer not.a.token" }] as Record<string, string>[]) {
      const res = await handler(new Request("http://app.local/x", { headers }));
      assert.equal(res.status, 401);
      assert.equal(res.headers.get("Content-Type"), "application/problem+json");
      assert.ok(res.headers.get("WWW-Authenticate"));
    }
    assert.equal(served, 0);
    assert.equal(tracker.stats().recorded, 0);
  }));

test("withUsage: without an answer in time it fails closed (503), or open as asked", async (t) => {
  // A usage API that never answers.
  const held: http.ServerResponse[] = [];
  const silent = http.createServer((_, res) => void held.push(res));
  silent.listen(0, "127.0.0.1");
  await once(silent, "listening");
  t.after(() => { for (const r of held) r.destroy(); silent.close(); });
  const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const seen = spy({ name: "none", needs: "api_key", send: async () => ({ retry: [], rejected: [] }) });
  const tracker = new Tracker({ transport: seen, logger: quiet });
  let served = 0;
  const serve = () => (served++, new Response("served"));
  const req = () => new Request("http://app.local/api/x", { headers: { "X-Api-Key": "nx_somekey123" } });

  const closed = withUsage(serve, { usageUrl: url, tracker, timeoutMs: 100, logger: quiet });
  const t0 = performance.now();
  const res = await closed(req());
  assert.ok(performance.now() - t0 < 30_000, "the check's timeout did not end the wait");
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("Retry-After"), "1");
  assert.equal(((await res.json()) as { type: string }).type, "urn:nexus:problem:unavailable");
  assert.equal(served, 0);

  const open = withUsage(serve, { usageUrl: "http://127.0.0.1:1", tracker, onUnavailable: "open", logger: quiet });
  const res2 = await open(req());
  assert.equal(res2.status, 200);
  assert.equal(await res2.text(), "served");
  assert.equal(res2.headers.get("RateLimit"), null, "no decision, no limit headers");
  await tracker.flush();
  assert.equal(seen.seen.length, 1, "a call served open is still recorded");
});

/** delaying is a proxy in front of moto_server that holds each request for ms. */
async function delaying(t: TestContext, target: string, ms: number): Promise<string> {
  const proxy = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () =>
      setTimeout(() => {
        const up = http.request(target + req.url, { method: req.method, headers: req.headers }, (r) => {
          res.writeHead(r.statusCode!, r.headers);
          r.pipe(res);
        });
        up.on("error", () => res.destroy());
        up.end(Buffer.concat(chunks));
      }, ms),
    );
  });
  proxy.listen(0, "127.0.0.1");
  await once(proxy, "listening");
  t.after(() => proxy.close());
  return `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

/** child runs test/sigterm-child.js, sends it SIGTERM once its events are recorded, and returns how it ended. */
async function sigtermChild(env: Record<string, string>): Promise<{ code: number | null; signal: string | null; stderr: string; ms: number }> {
  const child = spawn(process.execPath, [`${packageRoot}/build/test/sigterm-child.js`], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr += b));
  let out = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (b: Buffer) => {
      out += b;
      if (out.includes("recorded")) resolve();
    });
    child.on("exit", () => reject(new Error(`the child ended before recording: ${stderr}`)));
  });
  const t0 = Date.now();
  child.kill("SIGTERM");
  const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
  return { code, signal, stderr, ms: Date.now() - t0 };
}

test("SIGTERM mid-batch: a batch in flight and a partial one buffered are both sent before the process ends", (t) =>
  run(t, async (st) => {
    const ent = user(st, "enterprise");
    const before = await used(st, ent);
    // Each SendMessageBatch is held 400 ms: the first 100 events are in flight when the signal comes.
    const proxy = await delaying(t, st.sqs_endpoint, 400);
    const r = await sigtermChild({ SQS_ENDPOINT: proxy, REGION: st.region, USAGE_QUEUE_URL: st.queue_url, USER_ID: ent.user_id, COUNT: "150", CLOSE_MS: "5000" });
    t.diagnostic(`the child ended ${r.ms} ms after SIGTERM (code ${r.code}, signal ${r.signal})`);
    assert.equal(r.signal, "SIGTERM", "the process still ends by its signal");
    assert.match(r.stderr, /"msg":"usage tracker: SIGTERM: sending the events it holds","events":150,"in_flight":100,"buffered":50/);
    assert.match(r.stderr, /"msg":"usage tracker: closed on SIGTERM","sent":150,"lost":0/);
    assert.ok(!r.stderr.includes(NOT_COUNTED), r.stderr);
    await waitUsed(st, ent, before + 150, lag(st));
  }));

test("SIGTERM with the queue unreachable: each event is logged whole when time runs out, and the log replays exactly", (t) =>
  run(t, async (st) => {
    const ent = user(st, "enterprise");
    const before = await used(st, ent);
    const r = await sigtermChild({ SQS_ENDPOINT: "http://127.0.0.1:1", REGION: st.region, USAGE_QUEUE_URL: st.queue_url, USER_ID: ent.user_id, COUNT: "150", CLOSE_MS: "500" });
    t.diagnostic(`the child ended ${r.ms} ms after SIGTERM (code ${r.code}, signal ${r.signal})`);
    assert.equal(r.signal, "SIGTERM");
    assert.ok(r.ms < 30_000, `close took ${r.ms} ms; its timeout is 500 ms: it did not give up`);
    assert.match(r.stderr, /"msg":"usage tracker: closed on SIGTERM","sent":0,"lost":150/);
    const lost = eventsFromLog(r.stderr);
    assert.equal(lost.length, 150);
    assert.equal(new Set(lost.map((e) => e.event_id)).size, 150);
    // The operator replays the log, twice by mistake: counted once.
    for (let i = 0; i < 2; i++) {
      const tracker = new Tracker({ transport: sqsTransport({ queueUrl: st.queue_url, client: sqsClient(st) }), logger: quiet });
      for (const e of lost) assert.ok(tracker.record(e));
      await tracker.close();
      assert.equal(tracker.stats().sent, 150);
    }
    await waitUsed(st, ent, before + 150, lag(st));
  }));
