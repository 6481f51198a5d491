import type { components } from "./openapi.js";
import type { UnderlyingSource } from "node:stream/web";
import { clampBytes, clampLatency, clampStatus, normalizeEndpoint, normalizeMethod } from "./normalize.js";
import { jsonLogger, type Logger } from "./log.js";
import type { Tracker } from "./tracker.js";

/** Decision is the answer of POST /v1/limits/check. */
export type Decision = components["schemas"]["Decision"];

/** The headers of a limit decision, set on every answer that had one (httpapi.RateLimitHeaders in Go). */
export const LIMIT_HEADERS = ["RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"] as const;

export interface WithUsageOptions {
  /** The usage API (the stack's ApiUrl; locally http://127.0.0.1:8080). */
  usageUrl: string;
  /** Records each served call. */
  tracker: Tracker;
  /**
   * The route template the calls are counted under, e.g. "/api/games/{id}"
   * (the method is put before it) or "GET /api/games/{id}". Default: the
   * request's path, which counts every id apart.
   */
  route?: string;
  /**
   * How long POST /v1/limits/check may take (default 1000 ms): a check is
   * aborted between timeoutMs and 1.1 × timeoutMs after it started (the
   * checks that start within a tenth of it share one timer).
   */
  timeoutMs?: number;
  /**
   * When the check fails (no answer in time, the API unreachable or
   * failing): "closed" (the default, as the Go middleware) answers 503
   * problem+json with Retry-After: 1 and serves nothing; "open" serves the
   * call without limit headers and records it.
   */
  onUnavailable?: "closed" | "open";
  /** Next.js's after (import { after } from "next/server"): recording and flushing run after the response. */
  after?: (task: () => Promise<void>) => void;
  /** Or the platform's waitUntil (Vercel's, a Cloudflare or Deno context's), given the same work as a promise. */
  waitUntil?: (promise: Promise<unknown>) => void;
  /**
   * Flush the tracker once each response is sent (default: when after or
   * waitUntil is given). A serverless function may be frozen as soon as it
   * has answered, so events must leave inside the after-response hook;
   * flushes run one at a time, each sending all that is buffered, so
   * concurrent requests share them. A long-running server can leave it to
   * the tracker's batching.
   */
  flushAfterResponse?: boolean;
  /**
   * The caller's user (and API key) ids, which the queue transport needs:
   * read from a bearer token's "sub" by default (the check has verified
   * it); for API keys the platform says whose they are.
   */
  identify?: (req: Request) => { user_id: string; api_key_id?: string } | undefined;
  fetch?: typeof fetch;
  logger?: Logger;
}

const decisions = new WeakMap<Request, Decision>();

/** decisionOf returns the limit decision of a request the wrapper let through. */
export function decisionOf(req: Request): Decision | undefined {
  return decisions.get(req);
}

/**
 * A body that declares its size (Content-Length) up to this many bytes is
 * not counted as it is sent: its size is the declared one, and the call is
 * recorded when the handler returns. Such a body is in the server's
 * buffers at once, so it would be recorded at the same moment; a larger
 * one is counted as it goes, since sending it takes time and a client may
 * leave halfway.
 */
export const DECLARED_BODY_MAX = 64 * 1024;

/**
 * withUsage meters a Web-standard route handler ((Request) => Response:
 * Next.js App Router route handlers, Hono, Bun, Deno). For each request it
 * asks POST /v1/limits/check once with the caller's X-Api-Key or bearer
 * token; a refusal is answered here (429 problem+json of type
 * urn:nexus:problem:rate_limited or quota_exceeded, with Retry-After) and
 * not counted; 401 and 403 are the check's own answers. Every answer that
 * had a decision carries the same RateLimit-Policy, RateLimit and
 * X-RateLimit-* headers as the Go middleware's: set on the handler's own
 * Response where its headers can change, on a copy where they cannot (a
 * Response from fetch, Response.redirect). A served call is recorded once
 * its body has been sent, with its real status (a thrown handler is a
 * 500), latency and bytes, normalised as the Go middleware does; a body
 * of declared size (Content-Length up to DECLARED_BODY_MAX) or none, and
 * the answer to a HEAD request (0 bytes: no body is sent for it), is
 * recorded when the handler returns, and its stream is passed on as it is.
 */
export function withUsage<A extends unknown[]>(
  handler: (req: Request, ...args: A) => Response | Promise<Response>,
  opts: WithUsageOptions,
): (req: Request, ...args: A) => Promise<Response> {
  const checkUrl = opts.usageUrl.replace(/\/+$/, "") + "/v1/limits/check";
  const doFetch = opts.fetch ?? fetch;
  const log = opts.logger ?? jsonLogger;
  const timeout = opts.timeoutMs ?? 1000;
  const failOpen = opts.onUnavailable === "open";
  const flushAfter = opts.flushAfterResponse ?? (opts.after !== undefined || opts.waitUntil !== undefined);
  const route = opts.route;
  const meter: Meter = {
    tracker: opts.tracker,
    route,
    fixed: route !== undefined && route.includes(" ") ? normalizeEndpoint(route) : undefined,
    identify: opts.identify,
  };
  const { after, waitUntil } = opts;
  const deadlines = new Deadlines(timeout);

  return async (req: Request, ...args: A): Promise<Response> => {
    const start = performance.now();
    const at = Date.now();
    const apiKey = req.headers.get("x-api-key") ?? undefined;
    const authorization = req.headers.get("authorization") ?? undefined;

    // The check: one round trip, with no body (its cost is 1 by default):
    // a body costs fetch a stream to send it, more than the rest of the
    // wrapper's work.
    let decision: Decision | undefined;
    let check: Response | undefined;
    let failure: string | undefined;
    const slot = deadlines.enter(start);
    try {
      const headers: Record<string, string> = {};
      if (apiKey !== undefined) headers["X-Api-Key"] = apiKey;
      if (authorization !== undefined) headers["Authorization"] = authorization;
      check = await doFetch(checkUrl, { method: "POST", headers, signal: slot.signal });
      if (check.status === 200) {
        decision = (await check.json()) as Decision;
        if (typeof decision?.allowed !== "boolean") failure = "POST /v1/limits/check answered no decision";
      } else if (check.status === 401 || check.status === 403) {
        return new Response(await check.text(), { status: check.status, headers: copy(check.headers, ["Content-Type", "WWW-Authenticate"]) });
      } else {
        failure = `POST /v1/limits/check answered ${check.status}`;
        await check.body?.cancel();
      }
    } catch (err) {
      failure =
        err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")
          ? `POST /v1/limits/check took longer than ${timeout} ms`
          : `POST /v1/limits/check failed: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`;
    } finally {
      slot.running--;
    }
    // The check's headers carry the limit headers set on every answer.
    let limits: Headers | undefined;
    if (failure !== undefined) {
      log.warn(`usage limits not checked: ${failOpen ? "serving the call (fail open)" : "refusing the call (fail closed)"}`, { reason: failure });
      if (!failOpen) {
        return problem(503, "unavailable", "Service Unavailable", "the usage limits could not be checked; try again", { "Retry-After": "1" });
      }
      decision = undefined;
    } else {
      limits = check!.headers;
      if (!decision!.allowed) {
        const headers = copy(limits, LIMIT_HEADERS);
        headers.set("Retry-After", limits.get("Retry-After") ?? String(Math.max(1, decision!.retry_after_seconds)));
        return refusal(decision!, headers);
      }
      decisions.set(req, decision!);
    }

    // Served: recorded once the body is out.
    const call = new Call(meter, req, start, at, apiKey, authorization);
    if (after !== undefined || waitUntil !== undefined) {
      const task = async () => {
        await call.recorded();
        if (flushAfter) await meter.tracker.flush();
      };
      if (after !== undefined) after(task);
      else waitUntil!(task());
    }

    let res: Response;
    try {
      res = await handler(req, ...args);
    } catch (err) {
      call.finish(500, 0);
      throw err;
    }
    if (res.type === "error") {
      call.finish(500, 0);
      return res;
    }
    const body = res.body;
    // No body is sent for HEAD (RFC 9110), and servers do not read it
    // (Next.js ends the response): it would never be counted to its end.
    const size = body === null || req.method === "HEAD" ? 0 : declaredSize(res.headers);
    let headers = res.headers;
    if (limits !== undefined) {
      try {
        setLimitHeaders(headers, limits);
      } catch {
        // Immutable headers (a Response from fetch, Response.redirect): a copy.
        headers = new Headers(headers);
        setLimitHeaders(headers, limits);
      }
    }
    if (size >= 0) {
      call.finish(res.status, size);
      return headers === res.headers ? res : new Response(body, { status: res.status, statusText: res.statusText, headers });
    }
    call.reader = body!.getReader();
    call.status = res.status;
    return new Response(new ReadableStream<Uint8Array>(call, ON_DEMAND), { status: res.status, statusText: res.statusText, headers });
  };
}

/**
 * The counted body reads the handler's on demand only, never ahead: what
 * it counts is what the server took.
 */
const ON_DEMAND = { highWaterMark: 0 };

/** What every call of one wrapped handler records with. */
interface Meter {
  tracker: Tracker;
  route: string | undefined;
  fixed: string | undefined;
  identify: WithUsageOptions["identify"];
}

/**
 * Call is one served call until it is recorded; it is also the source of
 * the stream that passes the handler's body on and counts its bytes
 * (one object a call, no closures). Its fields are named apart from a
 * source's own (start, type): the stream would call them.
 */
class Call implements UnderlyingSource<Uint8Array> {
  /** The handler's body and status, once it answered with a body of unknown size. */
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  status = 0;
  #bytes = 0;
  #done = false;
  #wake: (() => void) | undefined;

  constructor(
    readonly meter: Meter,
    readonly req: Request,
    readonly began: number,
    readonly at: number,
    readonly apiKey: string | undefined,
    readonly authorization: string | undefined,
  ) {}

  /** recorded resolves once the call is recorded. */
  recorded(): Promise<void> {
    return this.#done ? Promise.resolve() : new Promise((r) => (this.#wake = r));
  }

  /** finish records the call, once. */
  finish(status: number, bytes: number): void {
    if (this.#done) return;
    this.#done = true;
    const { meter, req } = this;
    const method = normalizeMethod(req.method);
    const id = meter.identify?.(req) ?? bearerSubject(this.authorization);
    meter.tracker.record(
      {
        user_id: id?.user_id,
        api_key_id: id?.api_key_id,
        endpoint: meter.fixed ?? normalizeEndpoint(method + " " + (meter.route ?? new URL(req.url).pathname)),
        method,
        status_code: clampStatus(status),
        latency_ms: clampLatency(performance.now() - this.began),
        request_bytes: requestBytes(req.headers),
        response_bytes: clampBytes(bytes),
        occurred_at: this.at,
      },
      this.apiKey,
    );
    this.#wake?.();
  }

  // The counted body: each pull passes one chunk of the handler's body on.
  async pull(c: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    try {
      const { value, done } = await this.reader!.read();
      if (done) {
        c.close();
        this.finish(this.status, this.#bytes);
        return;
      }
      this.#bytes += value.byteLength;
      c.enqueue(value);
    } catch (err) {
      this.finish(this.status, this.#bytes);
      c.error(err);
    }
  }

  cancel(reason: unknown): Promise<void> {
    // The client went away: the call was served as far as it went.
    this.finish(this.status, this.#bytes);
    return this.reader!.cancel(reason);
  }
}

/**
 * declaredSize is the size a body declares (Content-Length) when it is
 * at most DECLARED_BODY_MAX, else -1: the body is counted as it is sent.
 */
function declaredSize(headers: Headers): number {
  const v = headers.get("content-length");
  if (v === null || v.length === 0 || v.length > 6) return -1;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n <= DECLARED_BODY_MAX ? n : -1;
}

/**
 * requestBytes is the size a request declares (Content-Length: digits
 * only, else 0), clamped into an event's bounds: a client may declare any
 * size for a body the handler never reads, and its call is counted all the
 * same.
 */
function requestBytes(headers: Headers): number {
  const v = headers.get("content-length");
  return v !== null && /^[0-9]{1,20}$/.test(v) ? clampBytes(Number(v)) : 0;
}

function setLimitHeaders(to: Headers, from: Headers): void {
  for (const name of LIMIT_HEADERS) {
    const v = from.get(name);
    if (v !== null) to.set(name, v);
  }
}

/**
 * Deadlines times the checks out with one AbortController and one timer
 * for all the checks that start within a tenth of the timeout (at most
 * 1,000 of them, under the listener count at which Node warns): a check
 * still running timeoutMs after its slot closed is aborted, so each check
 * gets between timeoutMs and 1.1 × timeoutMs. A slot whose checks have all
 * ended is not aborted, and a slot's timer does not keep a process alive.
 */
class Deadlines {
  readonly #ms: number;
  readonly #width: number;
  #slot: Slot | undefined;

  constructor(ms: number) {
    this.#ms = ms;
    this.#width = Math.max(1, ms / 10);
  }

  /** enter returns the slot of a check starting at now (performance.now()); the caller decrements its running count when the check ends. */
  enter(now: number): Slot {
    let s = this.#slot;
    if (s === undefined || now >= s.closes || s.started >= 1000) {
      s = this.#slot = new Slot(now + this.#width);
      const timer = setTimeout(Slot.expire, this.#width + this.#ms, s);
      (timer as { unref?: () => void }).unref?.();
    }
    s.started++;
    s.running++;
    return s;
  }
}

class Slot {
  readonly #abort = new AbortController();
  readonly signal = this.#abort.signal;
  started = 0;
  running = 0;
  constructor(readonly closes: number) {}

  static expire(s: Slot): void {
    if (s.running > 0) s.#abort.abort(new DOMException("the check timed out", "TimeoutError"));
  }
}

function copy(from: Headers, names: readonly string[]): Headers {
  const h = new Headers();
  for (const name of names) {
    const v = from.get(name);
    if (v !== null) h.set(name, v);
  }
  return h;
}

/** refusal is the 429 of a refused decision, as Go's httpapi.Refusal words it. */
function refusal(d: Decision, headers: Headers): Response {
  if (d.reason === "quota_exceeded") {
    const end = new Date(d.quota.period.end).toISOString().replace(/\.\d+Z$/, "Z");
    return problem(429, "quota_exceeded", "Too Many Requests",
      `the ${d.quota.included} calls included in the billing period are used; the next period starts at ${end}`, headers);
  }
  return problem(429, "rate_limited", "Too Many Requests",
    `rate limit of ${d.limit} calls at ${d.rate_per_second}/s exceeded; retry in ${Math.max(1, d.retry_after_seconds)} s`, headers);
}

function problem(status: number, code: string, title: string, detail: string, extra: Headers | Record<string, string>): Response {
  const headers = new Headers(extra);
  headers.set("Content-Type", "application/problem+json");
  return new Response(JSON.stringify({ type: `urn:nexus:problem:${code}`, title, status, detail }), { status, headers });
}

/** bearerSubject reads the sub of a bearer JWT (verified by the check, not here). */
function bearerSubject(authorization: string | undefined): { user_id: string; api_key_id?: string } | undefined {
  if (authorization === undefined || !/^bearer /i.test(authorization)) return undefined;
  const payload = authorization.slice(7).trim().split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const bin = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)))) as { sub?: unknown };
    return typeof claims.sub === "string" ? { user_id: claims.sub } : undefined;
  } catch {
    return undefined;
  }
}
