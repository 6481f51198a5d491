// The example app end to end: `next build`, `next start` against the local
// stack (make dev's, or the one cmd/internal/tsclient starts, named by
// NEXUS_DEV_ADMIN), traffic with the demo users' API keys, and what the
// usage API then says. Without a stack it skips (under CI=true it fails).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { Tracker, httpTransport } from "@nexus/usage";

const dir = fileURLToPath(new URL("..", import.meta.url));
const admin = process.env.NEXUS_DEV_ADMIN;
if (!admin && process.env.CI === "true") throw new Error("no local stack: set NEXUS_DEV_ADMIN (make dev prints the admin URL)");
const skip = admin ? false : "no local stack (NEXUS_DEV_ADMIN unset; run make dev, then NEXUS_DEV_ADMIN=http://127.0.0.1:8081 npm test)";

let st; // the stack's state
let app; // the app's base URL
let server; // next start
let serverLog = "";
const userOf = (plan) => st.users.find((u) => u.plan === plan);

before(async () => {
  if (skip) return;
  st = await (await fetch(`${admin.replace(/\/$/, "")}/state`)).json();
  const env = { ...process.env, NEXT_TELEMETRY_DISABLED: "1", NEXUS_USAGE_URL: st.gateway_url };
  if (process.env.NEXUS_NEXT_BUILT !== "1") {
    const t0 = Date.now();
    const b = spawnSync(process.execPath, ["node_modules/next/dist/bin/next", "build"], { cwd: dir, env, encoding: "utf8" });
    assert.equal(b.status, 0, `next build failed:\n${b.stdout}\n${b.stderr}`);
    console.log(`next build: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const port = await freePort();
  server = spawn(process.execPath, ["node_modules/next/dist/bin/next", "start", "-H", "127.0.0.1", "-p", String(port)], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.on("data", (b) => (serverLog += b));
  server.stderr.on("data", (b) => (serverLog += b));
  app = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      await fetch(`${app}/`);
      break;
    } catch {
      if (i > 300 || server.exitCode !== null) throw new Error(`next start did not come up:\n${serverLog}`);
      await sleep(100);
    }
  }
});

after(async () => {
  if (server && server.exitCode === null) {
    server.kill("SIGKILL");
    await once(server, "exit");
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function freePort() {
  const s = net.createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const { port } = s.address();
  s.close();
  return port;
}

/**
 * used reads a user's calls in the period through the admin's view (the admin's budget, not the
 * user's); past the admin's read budget it waits the answer's Retry-After, as every caller must.
 */
async function used(u) {
  for (;;) {
    const res = await fetch(`${st.gateway_url}/v1/admin/users/${u.user_id}/usage`, { headers: { Authorization: `Bearer ${st.admin.token}` } });
    if (res.status === 429) {
      await sleep(1000 * Number(res.headers.get("Retry-After") ?? 1));
      continue;
    }
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()).used;
  }
}

/** waitUsed waits for the count, at most ms, and returns how long it took; a count past want fails at once. */
async function waitUsed(u, want, ms) {
  const t0 = Date.now();
  let got;
  while (Date.now() - t0 <= ms) {
    got = await used(u);
    assert.ok(got <= want, `${u.plan}: ${got} calls counted; want ${want}`);
    if (got === want) return Date.now() - t0;
    await sleep(50);
  }
  assert.fail(`${u.plan}: ${got} calls counted ${ms} ms after the last answer; want ${want}`);
}

const POLICY = /^"burst";q=(\d+);w=(\d+), "quota";q=(\d+);w=(\d+)$/;
const LIMIT = /^"burst";r=(\d+);t=(\d+), "quota";r=(-?\d+);t=(\d+)$/;

/** limitHeaders checks the Go middleware's rate limit headers on an answer. */
function limitHeaders(res, what) {
  const policy = POLICY.exec(res.headers.get("RateLimit-Policy") ?? "");
  const limit = LIMIT.exec(res.headers.get("RateLimit") ?? "");
  assert.ok(policy && limit, `${what}: ${res.status} without the rate limit headers`);
  assert.equal(res.headers.get("X-RateLimit-Limit"), policy[1], what);
  assert.equal(res.headers.get("X-RateLimit-Remaining"), limit[1], what);
  assert.equal(res.headers.get("X-RateLimit-Reset"), limit[2], what);
  if (res.status === 429) assert.ok(Number(res.headers.get("Retry-After")) >= 1, `${what}: 429 without Retry-After`);
}

const call = (u, path, init = {}) =>
  fetch(`${app}${path}`, { ...init, headers: { "X-Api-Key": u.api_key, ...(init.headers ?? {}) } });

// The batching windows: the app flushes each call from after() (no wait of
// its own), then the queue's window before the record function. The goal
// is that a call is counted within them plus one second; it is measured
// and reported, not asserted (this machine's load is not the code's):
// the tests wait up to LIVE for the exact count.
const goal = () => st.batch_window_seconds * 1000 + 1000;
const LIVE = 60_000;
const verdict = (ms) => `goal: batching window ${st.batch_window_seconds} s + 1 s = ${goal()} ms: ${ms <= goal() ? "met" : "not met"}`;

test("the pro user's calls: headers on every answer, each counted once; the time to GET /v1/usage against the batching window plus one second", { skip }, async (t) => {
  const pro = userOf("pro");
  const before = await used(pro);
  const calls = [
    ["/api/games", {}, 200],
    ["/api/games/1", {}, 200],
    ["/api/games/3", {}, 200],
    ["/api/games/99", {}, 404],
    ["/api/scores", { method: "POST", body: JSON.stringify({ game: "2", score: 4242 }), headers: { "Content-Type": "application/json" } }, 201],
    ["/api/scores", { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } }, 400],
  ];
  let n = 0;
  for (let round = 0; round < 5; round++) {
    for (const [path, init, status] of calls) {
      const res = await call(pro, path, init);
      await res.arrayBuffer();
      assert.equal(res.status, status, `${init.method ?? "GET"} ${path}`);
      limitHeaders(res, `${init.method ?? "GET"} ${path}`);
      n++;
    }
  }
  const took = await waitUsed(pro, before + n, LIVE);
  t.diagnostic(`${n} calls counted ${took} ms after the last answer (${verdict(took)})`);

  // The page shows them, read through the typed client with the user's key.
  const page = await (await fetch(`${app}/`, { headers: { Cookie: `nexus_api_key=${pro.api_key}` } })).text();
  const shown = /data-testid="used">([\d,]+)</.exec(page);
  assert.ok(shown, "the page shows no usage");
  assert.equal(Number(shown[1].replace(/,/g, "")), before + n);
  assert.match(page, /Pro/);
});

test("the free user past its rate: 429 rate_limited with Retry-After, headers on every answer, refused calls not counted", { skip }, async (t) => {
  const free = userOf("free");
  const before = await used(free);
  const answers = await Promise.all(Array.from({ length: 15 }, () => call(free, "/api/games")));
  const refused = answers.filter((r) => r.status === 429);
  const served = answers.filter((r) => r.status === 200);
  assert.ok(refused.length > 0 && served.length > 0, `${served.length} served, ${refused.length} refused; a burst of 10`);
  assert.equal(served.length + refused.length, 15);
  for (const r of answers) limitHeaders(r, `GET /api/games (${r.status})`);
  for (const r of refused) {
    const p = await r.json();
    assert.equal(r.headers.get("Content-Type"), "application/problem+json");
    assert.equal(p.type, "urn:nexus:problem:rate_limited");
    assert.match(p.detail, /^rate limit of 10 calls at 2\/s exceeded; retry in \d+ s$/);
  }
  await Promise.all(served.map((r) => r.arrayBuffer()));
  // Each served call is reported with the key, which the rate limit
  // counts too: reports refused for it are sent again after Retry-After.
  const took = await waitUsed(free, before + served.length, LIVE);
  t.diagnostic(`${served.length} served and ${refused.length} refused; counted ${took} ms after the last answer`);
});

test("the free user at its hard quota: 429 quota_exceeded", { skip }, async (t) => {
  const free = userOf("free");
  let now = await used(free);
  // The rest of the quota but 3 calls, reported as one event (POST /v1/events, as a platform's earlier calls).
  const fill = 1000 - 3 - now;
  if (fill > 0) {
    await sleep(5000); // the burst the last test spent
    const tracker = new Tracker({ transport: httpTransport({ baseUrl: st.gateway_url }), maxAttempts: 10 });
    tracker.record({ endpoint: "GET /api/games", method: "GET", status_code: 200, quantity: fill }, free.api_key);
    await tracker.close();
    assert.equal(tracker.stats().sent, 1);
    await waitUsed(free, now + fill, LIVE);
    now += fill;
  }
  let quota;
  let served = 0;
  for (let i = 0; i < 20 && !quota; i++) {
    await sleep(1100); // a check and a report a call: 2 of the 2 calls/s
    const res = await call(free, "/api/games");
    limitHeaders(res, `GET /api/games (${res.status})`);
    if (res.status === 200) served++;
    if (res.status === 429) {
      const p = await res.json();
      if (p.type === "urn:nexus:problem:quota_exceeded") {
        quota = { res, p };
        break;
      }
    } else {
      await res.arrayBuffer();
    }
  }
  assert.ok(quota, "no 429 quota_exceeded after 20 calls at the quota");
  assert.match(quota.p.detail, /^the 1000 calls included in the billing period are used; the next period starts at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.match(quota.res.headers.get("RateLimit"), /"quota";r=0;/);
  t.diagnostic(`${served} calls served after the fill (${now} used), then quota_exceeded`);
  await waitUsed(free, now + served, LIVE);
});

test("SIGTERM while calls are being served: Next.js waits for their after() work, and every served call is counted", { skip }, async (t) => {
  const ent = userOf("enterprise");
  const before = await used(ent);
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => call(ent, `/api/games/${(i % 3) + 1}`)));
  // Listen for the exit before the signal: the server may be gone before
  // the answers below are read, and an exit already emitted is not heard.
  const exited = once(server, "exit");
  server.kill("SIGTERM");
  for (const r of answers) {
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  }
  const [code, signal] = await exited;
  t.diagnostic(`next start ended with code ${code}, signal ${signal}`);
  const took = await waitUsed(ent, before + 40, LIVE);
  t.diagnostic(`40 calls counted ${took} ms after the signal`);
});
