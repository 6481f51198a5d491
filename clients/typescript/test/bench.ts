// The wrapper's cost per request against the local stack (NEXUS_DEV_ADMIN):
// each request's time from calling the wrapped handler to its body read,
// less the check's round trip (POST /v1/limits/check, its answer read and
// parsed) and
// less the handler's own time, is what withUsage adds: reading the
// credentials, the decision, the headers, the counted body, the record.
// The tracker batches as deployed (100 events or 5 s, POST /v1/events), so
// its sends share the event loop with the requests measured.
//
// Beside each wrapped request the same steps run without the wrapper (the
// control: the same check, the handler, its body read), one after the
// other in alternating order, so that both see the same machine: the
// control's figures are what this machine and this harness add to a
// wrapper that does nothing. Then the stack's last answer is replayed in
// process, so that no network wait and no other process's turn falls
// between the wrapper's steps, timed and in CPU time. Every sample after
// the warm-up is kept; the garbage collections (PerformanceObserver "gc")
// that fell inside the samples are counted and reported, not removed.
//
//   npm run bench            (make dev running: NEXUS_DEV_ADMIN=http://127.0.0.1:8081)
//   BENCH_REQUESTS=5000 npm run bench
import os from "node:os";
import { PerformanceObserver } from "node:perf_hooks";
import { Tracker, httpTransport, withUsage } from "../src/index.js";
import type { State } from "./stack.js";

const admin = process.env.NEXUS_DEV_ADMIN;
if (!admin) {
  console.error("bench: set NEXUS_DEV_ADMIN to a running stack's admin URL (make dev prints it)");
  process.exit(2);
}
const st = (await (await fetch(`${admin.replace(/\/$/, "")}/state`)).json()) as State;
const ent = st.users.find((u) => u.plan === "enterprise")!;
const n = Number(process.env.BENCH_REQUESTS ?? 3000);
const warm = 1000;
const load0 = os.loadavg();

// Garbage collections, on the clock of performance.now().
const gcs: { start: number; end: number }[] = [];
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration });
});
observer.observe({ entryTypes: ["gc"] });

/** cpuSince is the CPU time (user and system, ms) the process used since c0. */
const cpuSince = (c0: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1000;
};

// The check, timed until its answer is read and parsed: that is its round
// trip. The wrapper reads the answer once (Response.json), as the end of
// that round trip; the harness has already read it to time it, so it
// hands the wrapper the answer with its json() already parsed, rather
// than a second copy to read again, which would time the same read twice,
// once as the wrapper's. (Before 2026-12-07 it did, and counted that
// second read as the wrapper's.)
let checkMs = 0;
let checkCPU = 0;
let lastAnswer: { text: string; headers: Headers } | undefined;
/** answered is a check's answer, read: a 200's json() gives the decision at once. */
const answered = (status: number, headers: Headers, text: string): Response => {
  if (status !== 200) return new Response(text, { status, headers });
  const decision: unknown = JSON.parse(text);
  return Object.assign(new Response(null, { status, headers }), { json: () => Promise.resolve(decision) });
};
const timedFetch = (async (input: string | URL | Request, init?: RequestInit) => {
  const t0 = performance.now();
  const res = await fetch(input, init);
  const text = await res.text();
  lastAnswer = { text, headers: res.headers };
  const again = answered(res.status, res.headers, text);
  checkMs = performance.now() - t0;
  return again;
}) as typeof fetch;
// The same answer again at once, for the wrapper's own work without I/O.
const replayFetch = (async () => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = answered(200, lastAnswer!.headers, lastAnswer!.text);
  checkMs = performance.now() - t0;
  checkCPU = cpuSince(c0);
  return res;
}) as typeof fetch;
// The same answer unread: the wrapper's json() reads and parses it, and
// that read is timed as the wrapper's (how this bench counted before).
const unreadFetch = (async () => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = new Response(lastAnswer!.text, { status: 200, headers: lastAnswer!.headers });
  checkMs = performance.now() - t0;
  checkCPU = cpuSince(c0);
  return res;
}) as typeof fetch;

let handlerMs = 0;
let handlerCPU = 0;
const payload = JSON.stringify({ id: "2", name: "Pong", players: 2 });
const payloadBytes = new TextEncoder().encode(payload).byteLength;
/** bare answers as most handlers do, with a body whose size it does not declare (Response.json, a string). */
const bare = () => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = new Response(payload, { headers: { "Content-Type": "application/json" } });
  handlerMs = performance.now() - t0;
  handlerCPU = cpuSince(c0);
  return res;
};
/** declared answers the same with its Content-Length, which the wrapper takes for the body's size. */
const declared = () => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = new Response(payload, { headers: { "Content-Type": "application/json", "Content-Length": String(payloadBytes) } });
  handlerMs = performance.now() - t0;
  handlerCPU = cpuSince(c0);
  return res;
};

/** A sample: its span on the clock, the time left after the check and the handler, its CPU time likewise. */
interface Sample {
  t0: number;
  t1: number;
  added: number;
  cpu: number;
  check: number;
  handler: number;
}
type Arm = (req: Request) => Promise<Response>;
const request = () => new Request("http://app.local/api/games/2", { headers: { "X-Api-Key": ent.api_key } });

/** once runs one request through an arm and returns its sample. */
async function once(arm: Arm): Promise<{ s: Sample; status: number }> {
  checkMs = handlerMs = checkCPU = handlerCPU = 0;
  const req = request();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = await arm(req);
  await res.arrayBuffer();
  const t1 = performance.now();
  const cpu = cpuSince(c0);
  return { s: { t0, t1, added: t1 - t0 - checkMs - handlerMs, cpu: cpu - checkCPU - handlerCPU, check: checkMs, handler: handlerMs }, status: res.status };
}

/** run runs the arms in turn, rotating which goes first, warm times unmeasured and then n times. */
async function run(arms: Arm[], warmup: number, times: number, statuses?: Map<number, number>): Promise<Sample[][]> {
  const out = arms.map(() => [] as Sample[]);
  for (let i = 0; i < warmup + times; i++) {
    for (let k = 0; k < arms.length; k++) {
      const a = (i + k) % arms.length;
      const { s, status } = await once(arms[a]!);
      if (i < warmup) continue;
      out[a]!.push(s);
      if (a === 0 && statuses) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  }
  return out;
}

// Against the stack.
const tracker = new Tracker({ transport: httpTransport({ baseUrl: st.gateway_url }), logger: { error() {}, warn() {}, info() {} } });
const wrapped = withUsage(bare, { usageUrl: st.gateway_url, tracker, route: "GET /api/games/{id}", fetch: timedFetch });
const checkUrl = `${st.gateway_url}/v1/limits/check`;
/** control makes the wrapper's check and calls the handler, and does nothing else. */
const control: Arm = async (req) => {
  await timedFetch(checkUrl, { method: "POST", headers: { "X-Api-Key": req.headers.get("x-api-key")! } });
  return bare();
};
const statuses = new Map<number, number>();
const [stackWrapped, stackControl] = (await run([wrapped, control], warm, n, statuses)) as [Sample[], Sample[]];
await tracker.close();
const sent = tracker.stats();

// In process: the stack's last answer replayed; the tracker's transport
// takes the events and sends nothing.
const quiet = new Tracker({ transport: { name: "none", needs: "api_key", send: async () => ({ retry: [], rejected: [] }) }, logger: { error() {}, warn() {}, info() {} } });
const opts = { usageUrl: st.gateway_url, tracker: quiet, route: "GET /api/games/{id}", fetch: replayFetch };
const inWrapped = withUsage(bare, opts);
const inDeclared = withUsage(declared, opts);
const inUnread = withUsage(bare, { ...opts, fetch: unreadFetch });
const inControl: Arm = async () => {
  await replayFetch("");
  return bare();
};
const [ownWrapped, ownDeclared, ownControl, ownUnread] = (await run([inWrapped, inDeclared, inControl, inUnread], 2000, 10 * n)) as [
  Sample[],
  Sample[],
  Sample[],
  Sample[],
];
await quiet.close();
await new Promise((r) => setTimeout(r, 100)); // the observer's last entries
observer.disconnect();

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const ms = (v: number) => (v < 1 ? `${(v * 1000).toFixed(0)} µs` : `${v.toFixed(2)} ms`);
const line = (name: string, xs: number[]) =>
  `  ${name.padEnd(50)} p50 ${ms(q(xs, 50)).padStart(9)}   p99 ${ms(q(xs, 99)).padStart(9)}   max ${ms(Math.max(...xs)).padStart(9)}`;
const added = (xs: Sample[]) => xs.map((s) => s.added);
/**
 * over is the wrapper's added latency, pair by pair: each wrapped sample
 * less the control taken beside it in the same round (the same harness
 * steps without the wrapper: making the request, reading the body). Both
 * samples' noise is in each difference, so its p99 is not lower than the
 * wrapper's own cost at p99; the differences' p99 is the figure for "what
 * the wrapper adds", the raw figures above stay for comparison.
 */
const over = (w: Sample[], c: Sample[], key: "added" | "cpu" = "added") => w.map((s, i) => s[key] - c[i]![key]);
const cpu = (xs: Sample[]) => xs.map((s) => s.cpu);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * gcIn reports the garbage collections while the samples were taken (the
 * warm-up's are left out) and how many samples had one in them, of all
 * and of those whose added time is 200 µs or more.
 */
function gcIn(arms: Sample[][]): string {
  const all = arms.flat();
  const t0 = Math.min(...all.map((s) => s.t0));
  const t1 = Math.max(...all.map((s) => s.t1));
  const mine = gcs.filter((g) => g.start >= t0 && g.end <= t1);
  const total = mine.reduce((a, g) => a + g.end - g.start, 0);
  const longest = Math.max(0, ...mine.map((g) => g.end - g.start));
  const hit = (s: Sample) => mine.some((g) => g.start < s.t1 && g.end > s.t0);
  const slow = all.filter((s) => s.added >= 0.2);
  return `${mine.length} collections, ${ms(total)} in all, the longest ${ms(longest)}; ${all.filter(hit).length} of ${all.length} samples had one in them, ${slow.filter(hit).length} of the ${slow.length} whose added time is 200 µs or more`;
}

const verdict = (xs: number[]) => (q(xs, 99) < 0.2 ? "met" : "not met");
console.log(`withUsage against the local stack (${st.gateway_url}): ${n} requests one after another after ${warm} to warm up,`);
console.log(`each beside the same steps without the wrapper; the enterprise user's API key; answers: ${[...statuses].map(([k, v]) => `${v} × ${k}`).join(", ")}`);
console.log(line("check round trip (POST /v1/limits/check)", stackWrapped.map((s) => s.check)));
console.log(line("added by the wrapper besides the check", added(stackWrapped)));
console.log(line("  the same steps without the wrapper (control)", added(stackControl)));
console.log(line("added latency: wrapped less the control beside it", over(stackWrapped, stackControl)));
console.log(line("the bare handler", stackWrapped.map((s) => s.handler)));
console.log(`  CPU time a request (mean, the check's client side in it): wrapped ${ms(mean(cpu(stackWrapped)))}, control ${ms(mean(cpu(stackControl)))}`);
console.log(`  garbage collection: ${gcIn([stackWrapped, stackControl])}`);
console.log(`  tracker: ${sent.recorded} recorded, ${sent.sent} sent (POST /v1/events), ${sent.rejected + sent.lost + sent.refused} not counted`);
console.log(`in process (the stack's last answer replayed, nothing sent), ${10 * n} requests each after 2,000:`);
console.log(line("the wrapper's own work", added(ownWrapped)));
console.log(line("  the same, in CPU time", cpu(ownWrapped)));
console.log(line("  a handler that declares its Content-Length", added(ownDeclared)));
console.log(line("    the same, in CPU time", cpu(ownDeclared)));
console.log(line("  the same steps without the wrapper (control)", added(ownControl)));
console.log(line("    the same, in CPU time", cpu(ownControl)));
console.log(line("added latency: wrapped less the control beside it", over(ownWrapped, ownControl)));
console.log(line("  the same, in CPU time", over(ownWrapped, ownControl, "cpu")));
console.log(line("  a declared Content-Length, less the control", over(ownDeclared, ownControl)));
console.log(line("  the check's answer read by the wrapper", added(ownUnread)));
console.log(line("    the same, in CPU time", cpu(ownUnread)));
console.log(`  garbage collection: ${gcIn([ownWrapped, ownDeclared, ownControl, ownUnread])}`);
console.log(
  `goal: wrapper overhead p99 < 200 µs, as added latency (less the control beside it): ${verdict(over(stackWrapped, stackControl))} against the stack, ` +
    `${verdict(over(ownWrapped, ownControl))} in process, ${verdict(over(ownWrapped, ownControl, "cpu"))} in CPU time; ` +
    `with the harness's own steps in it: ${verdict(added(stackWrapped))} against the stack (the control's p99: ${ms(q(added(stackControl), 99))}), ` +
    `${verdict(added(ownWrapped))} in process, ${verdict(cpu(ownWrapped))} in CPU time`,
);
const load1 = os.loadavg();
console.log(`this machine: ${os.cpus().length} cores, load average ${load0[0]!.toFixed(1)} (1 min), ${load0[1]!.toFixed(1)} (5 min) at the start, ${load1[0]!.toFixed(1)}, ${load1[1]!.toFixed(1)} at the end; node ${process.version}`);
