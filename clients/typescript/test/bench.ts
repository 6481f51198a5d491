// The wrapper's cost per request against the local stack (NEXUS_DEV_ADMIN):
// each request's time from calling the wrapped handler to its body read,
// less the check's round trip (POST /v1/limits/check, its answer read) and
// less the handler's own time, is what withUsage adds: reading the
// credentials, the decision, the headers, the counted body, the record.
// The tracker batches as deployed (100 events or 5 s, POST /v1/events), so
// its sends share the event loop with the requests measured.
//
//   npm run bench            (make dev running: NEXUS_DEV_ADMIN=http://127.0.0.1:8081)
//   BENCH_REQUESTS=2000 npm run bench
import { Tracker, httpTransport, withUsage } from "../src/index.js";
import type { State } from "./stack.js";

const admin = process.env.NEXUS_DEV_ADMIN;
if (!admin) {
  console.error("bench: set NEXUS_DEV_ADMIN to a running stack's admin URL (make dev prints it)");
  process.exit(2);
}
const st = (await (await fetch(`${admin.replace(/\/$/, "")}/state`)).json()) as State;
const ent = st.users.find((u) => u.plan === "enterprise")!;
const n = Number(process.env.BENCH_REQUESTS ?? 1000);
const warm = 200;

let checkMs = 0;
let lastAnswer: { body: ArrayBuffer; headers: Headers } | undefined;
const timedFetch = (async (input: string | URL | Request, init?: RequestInit) => {
  const t0 = performance.now();
  const res = await fetch(input, init);
  const body = await res.arrayBuffer();
  checkMs = performance.now() - t0;
  lastAnswer = { body, headers: res.headers };
  return new Response(body, { status: res.status, headers: res.headers });
}) as typeof fetch;
// The same answer again at once, for the wrapper's own work without I/O.
let checkCPU = 0;
const replayFetch = (async () => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = new Response(lastAnswer!.body.slice(0), { status: 200, headers: lastAnswer!.headers });
  checkMs = performance.now() - t0;
  checkCPU = cpuSince(c0);
  return res;
}) as typeof fetch;
/** cpuSince is the CPU time (user and system, ms) the process used since c0. */
const cpuSince = (c0: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1000;
};

let handlerMs = 0;
let handlerCPU = 0;
const payload = JSON.stringify({ id: "2", name: "Pong", players: 2 });
const bare = () => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = new Response(payload, { headers: { "Content-Type": "application/json" } });
  handlerMs = performance.now() - t0;
  handlerCPU = cpuSince(c0);
  return res;
};

const tracker = new Tracker({ transport: httpTransport({ baseUrl: st.gateway_url }), logger: { error() {}, warn() {}, info() {} } });
const wrapped = withUsage(bare, { usageUrl: st.gateway_url, tracker, route: "GET /api/games/{id}", fetch: timedFetch });

const overhead: number[] = [];
const check: number[] = [];
const handler: number[] = [];
const statuses = new Map<number, number>();
for (let i = 0; i < warm + n; i++) {
  const req = new Request("http://app.local/api/games/2", { headers: { "X-Api-Key": ent.api_key } });
  checkMs = handlerMs = 0;
  const t0 = performance.now();
  const res = await wrapped(req);
  await res.arrayBuffer();
  const total = performance.now() - t0;
  if (i < warm) continue;
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  overhead.push(total - checkMs - handlerMs);
  check.push(checkMs);
  handler.push(handlerMs);
}
await tracker.close();

// The wrapper's own work: the stack's last answer replayed in process, so
// that no network wait and no other process's turn on the CPU falls
// between its steps; the tracker's transport takes the events and sends
// nothing.
const quiet = new Tracker({ transport: { name: "none", needs: "api_key", send: async () => ({ retry: [], rejected: [] }) }, logger: { error() {}, warn() {}, info() {} } });
const inProcess = withUsage(bare, { usageUrl: st.gateway_url, tracker: quiet, route: "GET /api/games/{id}", fetch: replayFetch });
const own: number[] = [];
const ownCPU: number[] = [];
for (let i = 0; i < 1000 + 10 * n; i++) {
  const req = new Request("http://app.local/api/games/2", { headers: { "X-Api-Key": ent.api_key } });
  checkMs = handlerMs = checkCPU = handlerCPU = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = await inProcess(req);
  await res.arrayBuffer();
  const total = performance.now() - t0;
  const cpu = cpuSince(c0);
  if (i >= 1000) {
    own.push(total - checkMs - handlerMs);
    ownCPU.push(cpu - checkCPU - handlerCPU);
  }
}
await quiet.close();

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const ms = (v: number) => (v < 1 ? `${(v * 1000).toFixed(0)} µs` : `${v.toFixed(2)} ms`);
const line = (name: string, xs: number[]) => `  ${name.padEnd(44)} p50 ${ms(q(xs, 50)).padStart(9)}   p99 ${ms(q(xs, 99)).padStart(9)}   max ${ms(Math.max(...xs)).padStart(9)}`;
const s = tracker.stats();
console.log(`withUsage against the local stack (${st.gateway_url}): ${n} requests one after another after ${warm} to warm up,`);
console.log(`the enterprise user's API key; answers: ${[...statuses].map(([k, v]) => `${v} × ${k}`).join(", ")}`);
console.log(line("check round trip (POST /v1/limits/check)", check));
console.log(line("added by the wrapper besides the check", overhead));
console.log(line("the bare handler", handler));
console.log(line(`the wrapper's own work (${own.length} in process)`, own));
console.log(line("  the same, in CPU time", ownCPU));
console.log(`  tracker: ${s.recorded} recorded, ${s.sent} sent (POST /v1/events), ${s.rejected + s.lost + s.refused} not counted`);
const verdict = (xs: number[]) => (q(xs, 99) < 0.2 ? "met" : "not met");
console.log(`  goal: wrapper overhead p99 < 200 µs: ${verdict(overhead)} against the stack, ${verdict(own)} in process, ${verdict(ownCPU)} in CPU time`);
const [l1, l5] = (await import("node:os")).loadavg();
console.log(`  this machine: ${(await import("node:os")).cpus().length} cores, load average ${l1!.toFixed(1)} (1 min), ${l5!.toFixed(1)} (5 min)`);
