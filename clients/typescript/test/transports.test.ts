// The transports' reading of their far side's answers, on stand-ins (the
// real queue and API are in stack.test.ts): which events are sent again,
// which are refused for good, and that the ones sent again keep their ids.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { httpTransport, sqsTransport, toWire, type Pending } from "../src/index.js";

const USER = "22222222-2222-4222-8222-222222222222";
const now = Date.now();
const items = (n: number, apiKey = "nx_key_a_123456"): Pending[] =>
  Array.from({ length: n }, (_, i) => ({ wire: toWire({ user_id: USER, endpoint: `GET /v1/x/${i}`, method: "GET", status_code: 200 }, now, 86_400_000, true), apiKey }));
const ids = (list: Pending[]) => list.map((p) => p.wire.event_id);

test("http: a 202's per-event results: accepted sent, rejected refused with its field, failed sent again with its id", async () => {
  const batch = items(3);
  const fetch = (async () =>
    Response.json({ accepted: 1, rejected: 1, failed: 1, results: [
      { index: 0, status: "accepted" },
      { index: 1, status: "rejected", param: "quantity", detail: "quantity: must be between 1 and 10000" },
      { index: 2, status: "failed", detail: "the usage queue could not be reached" },
    ] }, { status: 202 })) as typeof globalThis.fetch;
  const out = await httpTransport({ baseUrl: "http://usage.local", fetch }).send(batch);
  assert.deepEqual(ids(out.retry), ids([batch[2]!]));
  assert.deepEqual(out.rejected.map((r) => r.item.wire.event_id), ids([batch[1]!]));
  assert.match(out.rejected[0]!.reason, /quantity/);
});

test("http: a 202 that answers for none of some events sends those again, never takes them as accepted", async () => {
  const batch = items(3);
  const fetch = (async () => Response.json({ accepted: 1, rejected: 0, failed: 0, results: [{ index: 0, status: "accepted" }] }, { status: 202 })) as typeof globalThis.fetch;
  const out = await httpTransport({ baseUrl: "http://usage.local", fetch }).send(batch);
  assert.deepEqual(ids(out.retry), ids(batch.slice(1)));
  assert.deepEqual(out.rejected, []);
});

test("http: a 429 keeps the key's events for its Retry-After; a 5xx keeps them; other keys go on", async () => {
  const a = items(2, "nx_key_a_123456");
  const b = items(2, "nx_key_b_123456");
  const c = items(1, "nx_key_c_123456");
  const fetch = (async (_url: string, init: RequestInit) => {
    const key = (init.headers as Record<string, string>)["X-Api-Key"];
    if (key === "nx_key_a_123456") return Response.json({ detail: "rate limited" }, { status: 429, headers: { "Retry-After": "3" } });
    if (key === "nx_key_b_123456") return Response.json({ detail: "internal error" }, { status: 500 });
    return Response.json({ results: [{ index: 0, status: "accepted" }] }, { status: 202 });
  }) as unknown as typeof globalThis.fetch;
  const out = await httpTransport({ baseUrl: "http://usage.local", fetch }).send([...a, ...b, ...c]);
  assert.deepEqual(ids(out.retry).sort(), ids([...a, ...b]).sort());
  assert.equal(out.retryAfterMs, 3000);
  assert.deepEqual(out.rejected, []);
});

test("sqs: a partly failed SendMessageBatch sends again exactly the failed entries' events; the sender's faults are refused", async () => {
  const batch = items(250); // three messages of 100, 100, 50
  const client = {
    send: async () => ({
      Successful: [{ Id: "0", MessageId: "m0" }],
      Failed: [{ Id: "1", Code: "InternalError", SenderFault: false }],
      // Entry 2 is in neither list.
    }),
  } as unknown as SQSClient;
  const out = await sqsTransport({ queueUrl: "http://sqs.local/q", client }).send(batch);
  assert.deepEqual(ids(out.retry), ids(batch.slice(100)));
  const refusing = { send: async () => ({ Successful: [{ Id: "0" }, { Id: "1" }], Failed: [{ Id: "2", Code: "InvalidMessageContents", Message: "bad", SenderFault: true }] }) } as unknown as SQSClient;
  const out2 = await sqsTransport({ queueUrl: "http://sqs.local/q", client: refusing }).send(batch);
  assert.deepEqual(out2.retry, []);
  assert.deepEqual(out2.rejected.map((r) => r.item.wire.event_id), ids(batch.slice(200)));
});

test("sqs: a SendMessageBatch that never answers is given up after timeoutMs and its events sent again", async () => {
  const batch = items(3);
  // A queue endpoint that takes the request and never answers: only the
  // abort signal ends the call, as the SDK's own request handler does.
  const hanging = {
    send: (_cmd: unknown, opts?: { abortSignal?: AbortSignal }) =>
      new Promise((_resolve, reject) => {
        opts?.abortSignal?.addEventListener("abort", () => reject(Object.assign(new Error("Request aborted"), { name: "AbortError" })));
      }),
  } as unknown as SQSClient;
  // The socket a real call waits on keeps the process alive; here a timer
  // stands for it (AbortSignal.timeout's own timer does not).
  const alive = setInterval(() => {}, 1000);
  const out = await Promise.race([
    sqsTransport({ queueUrl: "http://sqs.local/q", client: hanging, timeoutMs: 50 }).send(batch),
    // Only so that a send that never ends fails the test instead of
    // holding the suite: no figure is asserted.
    new Promise<"hung">((r) => setTimeout(() => r("hung"), 60_000).unref()),
  ]);
  clearInterval(alive);
  assert.notEqual(out, "hung", "the send never ended: the 50 ms timeout did not abandon it");
  if (out === "hung") return;
  assert.deepEqual(ids(out.retry), ids(batch));
  assert.match(out.error ?? "", /could not be reached/);
});
