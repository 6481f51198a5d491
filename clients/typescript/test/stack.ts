// The local stack the tests run against: make dev's, or the one the Go
// harness (cmd/internal/e2e/tsclient) starts, named by NEXUS_DEV_ADMIN (its
// admin endpoint, whose GET /state lists the URLs and the demo users).
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";

export const repoRoot = fileURLToPath(new URL("../../../..", import.meta.url)).replace(/\/$/, "");
export const packageRoot = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");

export interface User {
  user_id: string;
  plan: string;
  api_key: string;
  api_key_id: string;
  token: string;
}
export interface State {
  gateway_url: string;
  admin_url: string;
  sqs_endpoint: string;
  region: string;
  queue_url: string;
  batch_window_seconds: number;
  users: User[];
  admin: { token: string };
}

let cached: Promise<State | undefined> | undefined;

/**
 * stack returns the running stack's state, or skips the test when none is
 * named (NEXUS_DEV_ADMIN unset); under CI=true a missing stack fails.
 */
export async function stack(t: TestContext): Promise<State> {
  cached ??= (async () => {
    const admin = process.env.NEXUS_DEV_ADMIN;
    if (!admin) return undefined;
    const res = await fetch(`${admin.replace(/\/$/, "")}/state`);
    if (!res.ok) throw new Error(`GET ${admin}/state answered ${res.status}`);
    return (await res.json()) as State;
  })();
  const st = await cached;
  if (st === undefined) {
    if (process.env.CI === "true") throw new Error("no local stack: set NEXUS_DEV_ADMIN to a running stack's admin URL (make dev prints it)");
    t.skip("no local stack (NEXUS_DEV_ADMIN unset; run make dev and NEXUS_DEV_ADMIN=http://127.0.0.1:8081 npm test)");
    throw new Skip();
  }
  return st;
}

/** Skip ends a test that t.skip marked skipped. */
export class Skip extends Error {}

export function user(st: State, plan: string): User {
  const u = st.users.find((x) => x.plan === plan);
  if (!u) throw new Error(`no ${plan} user in the stack's state`);
  return u;
}

/**
 * used returns the calls counted in a user's billing period (GET /v1/admin/users/{id}/usage, the
 * admin's budget); past the admin's read budget it waits the answer's Retry-After.
 */
export async function used(st: State, u: User): Promise<number> {
  for (;;) {
    const res = await fetch(`${st.gateway_url}/v1/admin/users/${u.user_id}/usage`, { headers: { Authorization: `Bearer ${st.admin.token}` } });
    if (res.status === 429) {
      await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get("Retry-After") ?? 1)));
      continue;
    }
    if (!res.ok) throw new Error(`GET /v1/admin/users/${u.user_id}/usage answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { used: number }).used;
  }
}

/**
 * waitUsed waits until the user's count is want, for at most ms, and
 * returns how long it took; it fails on a count past want (a call counted
 * twice) or on the time running out.
 */
export async function waitUsed(st: State, u: User, want: number, ms: number): Promise<number> {
  const t0 = Date.now();
  let got = -1;
  while (Date.now() - t0 < ms) {
    got = await used(st, u);
    if (got > want) throw new Error(`${u.plan} user: ${got} calls counted; want ${want} (counted twice?)`);
    if (got === want) {
      // Stay a moment: a late duplicate would show now.
      await new Promise((r) => setTimeout(r, 300));
      const again = await used(st, u);
      if (again !== want) throw new Error(`${u.plan} user: ${again} calls counted after ${want}; want ${want}`);
      return Date.now() - t0;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${u.plan} user: ${got} calls counted after ${ms} ms; want ${want}`);
}

/**
 * drained waits until the usage queue holds no message, visible or in
 * flight, twice in a row: everything sent before has been read and
 * recorded (the poller deletes a message once the record function took it).
 */
export async function drained(st: State, ms = 60_000): Promise<void> {
  const sqs = new SQSClient({ endpoint: st.sqs_endpoint, region: st.region, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
  const t0 = Date.now();
  let empty = 0;
  while (Date.now() - t0 < ms) {
    const a = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: st.queue_url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }));
    const n = Number(a.Attributes?.ApproximateNumberOfMessages ?? 1) + Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 1);
    empty = n === 0 ? empty + 1 : 0;
    if (empty === 2) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the usage queue still holds messages after ${ms} ms`);
}
