import { SQSClient, SendMessageBatchCommand, type SendMessageBatchRequestEntry } from "@aws-sdk/client-sqs";
import type { Pending, SendOutcome, Transport } from "./tracker.js";

/** SQS limits: entries of one SendMessageBatch, bytes of a message and of a whole batch. */
export const MAX_BATCH_ENTRIES = 10;
export const MAX_PAYLOAD_BYTES = 256 * 1024;
/** The most events one queue message may carry (the record function's limit). */
export const MAX_EVENTS_PER_MESSAGE = 100;

export interface SqsTransportOptions {
  /** The usage queue (the stack's QueueUrl output). */
  queueUrl: string;
  /**
   * The SQS client; default new SQSClient({}), which takes its region,
   * credentials and AWS_ENDPOINT_URL(_SQS) from the environment.
   */
  client?: SQSClient;
  /**
   * How long one SendMessageBatch may take (default 10000 ms): a call
   * that does not answer in time is abandoned and its events are sent
   * again with the same ids, so that a queue endpoint that never answers
   * cannot hold the tracker's flushes (and its buffer) up.
   */
  timeoutMs?: number;
}

/** Message is one queue message: a JSON array of events. */
export interface Message {
  body: string;
  items: Pending[];
}

/**
 * pack groups events into messages of at most 100 events and 256 KiB (a
 * JSON array, as the record function reads a message) and messages into
 * batches of at most 10 entries and 256 KiB, as Go's sqspub does. An event
 * whose JSON alone is larger than a message is returned apart.
 */
export function pack(items: Pending[], maxBytes: number = MAX_PAYLOAD_BYTES): { batches: Message[][]; tooBig: Pending[] } {
  const msgs: Message[] = [];
  const tooBig: Pending[] = [];
  let cur: Pending[] = [];
  let parts: string[] = [];
  let size = 1; // "["
  const flush = () => {
    if (cur.length > 0) msgs.push({ body: "[" + parts.join(",") + "]", items: cur });
    cur = [];
    parts = [];
    size = 1;
  };
  for (const item of items) {
    const js = JSON.stringify(item.wire);
    const n = byteLength(js);
    if (n + 2 > maxBytes) {
      tooBig.push(item);
      continue;
    }
    if (cur.length === MAX_EVENTS_PER_MESSAGE || size + 1 + n + 1 > maxBytes) flush();
    if (cur.length > 0) size++; // ","
    parts.push(js);
    cur.push(item);
    size += n;
  }
  flush();
  const batches: Message[][] = [];
  let b: Message[] = [];
  let bytes = 0;
  for (const m of msgs) {
    const n = byteLength(m.body);
    if (b.length === MAX_BATCH_ENTRIES || bytes + n > maxBytes) {
      batches.push(b);
      b = [];
      bytes = 0;
    }
    b.push(m);
    bytes += n;
  }
  if (b.length > 0) batches.push(b);
  return { batches, tooBig };
}

const encoder = new TextEncoder();
function byteLength(s: string): number {
  // ASCII is the common case; the encoder only for the rest.
  return /^[\x00-\x7f]*$/.test(s) ? s.length : encoder.encode(s).length;
}

/**
 * sqsTransport sends events to the usage queue with SendMessageBatch, for
 * trusted platform services that hold queue credentials
 * (sqs:SendMessage). Each event must name its user_id. Entries SQS refuses
 * as the sender's fault are rejected; other failures, and calls that take
 * longer than timeoutMs, are retried with the same ids.
 */
export function sqsTransport(opts: SqsTransportOptions): Transport {
  const client = opts.client ?? new SQSClient({});
  const timeout = opts.timeoutMs ?? 10_000;
  return {
    name: "sqs",
    needs: "user_id",
    async send(items: Pending[], signal?: AbortSignal): Promise<SendOutcome> {
      const out: SendOutcome = { retry: [], rejected: [] };
      const { batches, tooBig } = pack(items);
      for (const item of tooBig) out.rejected.push({ item, reason: "larger than an SQS message" });
      for (const batch of batches) {
        if (signal?.aborted) {
          for (const m of batch) out.retry.push(...m.items);
          continue;
        }
        const entries: SendMessageBatchRequestEntry[] = batch.map((m, i) => ({ Id: String(i), MessageBody: m.body }));
        try {
          const sig = signal ? AbortSignal.any([signal, AbortSignal.timeout(timeout)]) : AbortSignal.timeout(timeout);
          const res = await client.send(new SendMessageBatchCommand({ QueueUrl: opts.queueUrl, Entries: entries }), { abortSignal: sig });
          const ok = new Set((res.Successful ?? []).map((s) => s.Id));
          const failed = new Map((res.Failed ?? []).map((f) => [f.Id, f]));
          batch.forEach((m, i) => {
            const id = String(i);
            const f = failed.get(id);
            if (f?.SenderFault) {
              for (const item of m.items) out.rejected.push({ item, reason: `SQS refused the message: ${f.Code}: ${f.Message ?? ""}` });
            } else if (!ok.has(id)) {
              out.retry.push(...m.items);
              out.error = f ? `SQS failed the message: ${f.Code}: ${f.Message ?? ""}` : "SQS reported the message neither sent nor failed";
            }
          });
        } catch (err) {
          for (const m of batch) out.retry.push(...m.items);
          out.error = `the usage queue could not be reached: ${describe(err)}`;
        }
      }
      return out;
    },
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
