import { isUUID, uuidv7 } from "./uuid.js";
import { MAX_ENDPOINT_BYTES, MAX_LATENCY_MS, MAX_TRANSFER_BYTES, isPrintable } from "./normalize.js";

/** The version of the usage event JSON written. */
export const EVENT_VERSION = 1;
/** Bounds of an event's fields, as the record path enforces them (shared/usage/event.go). */
export const MAX_QUANTITY = 1_000_000;
export { MAX_LATENCY_MS, MAX_TRANSFER_BYTES };
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
export const DEFAULT_BACKFILL_WINDOW_MS = 35 * 24 * 3_600_000;

/** One metered call, as given to Tracker.record. */
export interface UsageEvent {
  /** The idempotency key; made here (a UUIDv7) when absent. */
  event_id?: string;
  /** The caller; required by the queue transport, set by the API for POST /v1/events. */
  user_id?: string;
  api_key_id?: string;
  /** The route template with its method, e.g. "GET /v1/games/{id}". */
  endpoint: string;
  method: string;
  status_code: number;
  /** Milliseconds; a fraction is dropped (12.7 counts as 12). */
  latency_ms?: number;
  request_bytes?: number;
  response_bytes?: number;
  /** Calls this event stands for (default 1). */
  quantity?: number;
  /** When the call was made (default: when recorded). */
  occurred_at?: Date | string | number;
}

/**
 * WireEvent is an event as the queue and POST /v1/events take it: the
 * fields of Go's usage.Event, in its order, and no other (the record
 * function refuses unknown fields).
 */
export interface WireEvent {
  v: number;
  event_id: string;
  user_id?: string;
  api_key_id?: string;
  endpoint: string;
  method: string;
  status_code: number;
  latency_ms: number;
  request_bytes: number;
  response_bytes: number;
  quantity: number;
  occurred_at: string;
}

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER"]);
const encoder = new TextEncoder();
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** EventError names the field of an event the record path would refuse. */
export class EventError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = "EventError";
  }
}

/**
 * toWire checks an event against the record path's rules at time now
 * (ms) and returns it as sent, with an id and a time set; it throws an
 * EventError naming the field the record path would quarantine it for.
 * needUser: the queue transport, where the event must name its user.
 */
export function toWire(e: UsageEvent, now: number, backfillMs: number, needUser: boolean): WireEvent {
  const id = (e.event_id ?? uuidv7(now)).toLowerCase();
  if (!isUUID(id)) throw new EventError("event_id", "must be a UUID");
  const w: WireEvent = { v: EVENT_VERSION, event_id: id } as WireEvent;
  if (e.user_id !== undefined && e.user_id !== "") {
    if (!isUUID(e.user_id)) throw new EventError("user_id", "must be a UUID");
    w.user_id = e.user_id.toLowerCase();
  } else if (needUser) {
    throw new EventError("user_id", "is required on the queue");
  }
  if (e.api_key_id !== undefined && e.api_key_id !== "") {
    if (!isUUID(e.api_key_id)) throw new EventError("api_key_id", "must be a UUID");
    w.api_key_id = e.api_key_id.toLowerCase();
  }
  if (typeof e.endpoint !== "string" || e.endpoint === "") throw new EventError("endpoint", "is required");
  if (!PRINTABLE_ASCII.test(e.endpoint)) {
    // The common case, printable ASCII, needs neither check's loop.
    if (encoder.encode(e.endpoint).length > MAX_ENDPOINT_BYTES) {
      throw new EventError("endpoint", `longer than ${MAX_ENDPOINT_BYTES} bytes`);
    }
    for (const ch of e.endpoint) {
      const r = ch.codePointAt(0)!;
      if (!isPrintable(r) || (r >= 0xd800 && r <= 0xdfff)) {
        throw new EventError("endpoint", `must not contain U+${r.toString(16).toUpperCase().padStart(4, "0")}`);
      }
    }
  } else if (e.endpoint.length > MAX_ENDPOINT_BYTES) {
    throw new EventError("endpoint", `longer than ${MAX_ENDPOINT_BYTES} bytes`);
  }
  w.endpoint = e.endpoint;
  if (!METHODS.has(e.method)) throw new EventError("method", "must be an HTTP method");
  w.method = e.method;
  w.status_code = int("status_code", e.status_code, 100, 599);
  // A latency is measured, often as a performance.now() difference: its
  // fraction of a millisecond is dropped, not a reason to lose the call.
  const lat = e.latency_ms ?? 0;
  w.latency_ms = int("latency_ms", lat >= 0 ? Math.floor(lat) : lat, 0, MAX_LATENCY_MS);
  w.request_bytes = int("request_bytes", e.request_bytes ?? 0, 0, MAX_TRANSFER_BYTES);
  w.response_bytes = int("response_bytes", e.response_bytes ?? 0, 0, MAX_TRANSFER_BYTES);
  w.quantity = int("quantity", e.quantity ?? 1, 1, MAX_QUANTITY);
  const at = e.occurred_at === undefined ? now : new Date(e.occurred_at).getTime();
  if (!Number.isFinite(at)) throw new EventError("occurred_at", "must be a date-time");
  if (at > now + MAX_FUTURE_SKEW_MS) throw new EventError("occurred_at", "more than 5m0s in the future");
  if (at < now - backfillMs) throw new EventError("occurred_at", "older than the backfill window");
  w.occurred_at = new Date(at).toISOString();
  return w;
}

function int(field: string, v: number, lo: number, hi: number): number {
  if (!Number.isSafeInteger(v) || v < lo || v > hi) throw new EventError(field, `must be an integer between ${lo} and ${hi}`);
  return v;
}
