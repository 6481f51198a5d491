// The shared normalisation cases (shared/usage/testdata/normalize.json),
// which the Go tests of shared/usage and shared/meter read too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { clampBytes, clampLatency, clampStatus, isPrintable, normalizeEndpoint, normalizeMethod } from "../src/index.js";
import { repoRoot } from "./stack.js";

type Part = string | { repeat: string; times: number } | { hex: string };
interface Case {
  name?: string;
  in: string | Part[];
  want: string | Part[];
}
const file = `${repoRoot}/shared/usage/testdata/normalize.json`;
const cases = JSON.parse(readFileSync(file, "utf8")) as {
  method: Case[];
  endpoint: Case[];
  status: { in: number; want: number }[];
  latency_ms: { in: number; want: number }[];
  bytes: { in: number; want: number }[];
  cf_ranges: [string, string][];
};

const encoder = new TextEncoder();
/** expand joins a case's parts; bytes that are not UTF-8 make it a Uint8Array. */
function expand(v: string | Part[]): string | Uint8Array {
  if (typeof v === "string") return v;
  const chunks: Uint8Array[] = [];
  let binary = false;
  for (const p of v) {
    if (typeof p === "string") chunks.push(encoder.encode(p));
    else if ("repeat" in p) chunks.push(encoder.encode(p.repeat.repeat(p.times)));
    else {
      binary = true;
      chunks.push(Uint8Array.from(p.hex.match(/../g)!.map((h) => parseInt(h, 16))));
    }
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return binary ? all : new TextDecoder().decode(all);
}

test("the shared cases are there", () => {
  assert.ok(cases.method.length > 10 && cases.endpoint.length > 20 && cases.status.length > 4 && cases.cf_ranges.length > 10);
});

test("normalizeMethod: the shared cases", () => {
  for (const c of cases.method) {
    const input = expand(c.in);
    // A method is text: bytes that are not UTF-8 reach a handler decoded.
    const method = typeof input === "string" ? input : new TextDecoder().decode(input);
    assert.equal(normalizeMethod(method), c.want, `normalizeMethod(${JSON.stringify(method)})`);
  }
});

test("normalizeEndpoint: the shared cases", async (t) => {
  for (const c of cases.endpoint) {
    await t.test(c.name ?? String(c.in), () => {
      assert.equal(normalizeEndpoint(expand(c.in)), expand(c.want));
    });
  }
});

test("clampStatus: the shared cases", () => {
  for (const c of cases.status) assert.equal(clampStatus(c.in), c.want, `clampStatus(${c.in})`);
});

test("clampLatency and clampBytes: the shared cases, and what only JavaScript numbers can be", () => {
  assert.ok(cases.latency_ms.length > 3 && cases.bytes.length > 3);
  for (const c of cases.latency_ms) assert.equal(clampLatency(c.in), c.want, `clampLatency(${c.in})`);
  for (const c of cases.bytes) assert.equal(clampBytes(c.in), c.want, `clampBytes(${c.in})`);
  for (const [v, want] of [[12.7, 12], [NaN, 0], [Infinity, 3_600_000], [-Infinity, 0], [-0.5, 0]] as const) {
    assert.equal(clampLatency(v), want, `clampLatency(${v})`);
  }
  for (const [v, want] of [[1e300, 2 ** 40], [NaN, 0], [0.5, 0]] as const) assert.equal(clampBytes(v), want, `clampBytes(${v})`);
});

test("category Cf of this runtime is the shared list (Go's)", () => {
  const got: [number, number][] = [];
  const cf = /^\p{Cf}$/u;
  for (let r = 0; r <= 0x10ffff; r++) {
    if (r >= 0xd800 && r <= 0xdfff) continue;
    if (!cf.test(String.fromCodePoint(r))) continue;
    const last = got[got.length - 1];
    if (last && last[1] === r - 1) last[1] = r;
    else got.push([r, r]);
  }
  const want = cases.cf_ranges.map(([lo, hi]) => [parseInt(lo.slice(2), 16), parseInt(hi.slice(2), 16)]);
  assert.deepEqual(got, want, `Unicode ${process.versions.unicode}'s Cf differs from ${file}`);
  for (const [lo, hi] of want) {
    assert.equal(isPrintable(lo!), false);
    assert.equal(isPrintable(hi!), false);
  }
});

test("lone surrogates are escaped as the replacement character", () => {
  assert.equal(normalizeEndpoint("GET /\ud800x"), "GET /%EF%BF%BDx");
});
