import type { components } from "./openapi.js";
import { clampStatus, normalizeEndpoint, normalizeMethod } from "./normalize.js";
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
  /** How long POST /v1/limits/check may take (default 1000 ms). */
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
 * withUsage meters a Web-standard route handler ((Request) => Response:
 * Next.js App Router route handlers, Hono, Bun, Deno). For each request it
 * asks POST /v1/limits/check once with the caller's X-Api-Key or bearer
 * token; a refusal is answered here (429 problem+json of type
 * urn:nexus:problem:rate_limited or quota_exceeded, with Retry-After) and
 * not counted; 401 and 403 are the check's own answers. Every answer that
 * had a decision carries the same RateLimit-Policy, RateLimit and
 * X-RateLimit-* headers as the Go middleware's. A served call is recorded
 * once its body has been sent, with its real status (a thrown handler is a
 * 500), latency and bytes, normalised as the Go middleware does.
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
  const { tracker } = opts;
  const route = opts.route;
  const fixed = route !== undefined && route.includes(" ") ? normalizeEndpoint(route) : undefined;

  return async (req: Request, ...args: A): Promise<Response> => {
    const start = performance.now();
    const at = Date.now();
    const apiKey = req.headers.get("x-api-key") ?? undefined;
    const authorization = req.headers.get("authorization") ?? undefined;

    // The check: one round trip.
    let decision: Decision | undefined;
    let check: Response | undefined;
    let failure: string | undefined;
    try {
      const headers: Record<string, string> = { "Content-Type": "application/json" };
      if (apiKey !== undefined) headers["X-Api-Key"] = apiKey;
      if (authorization !== undefined) headers["Authorization"] = authorization;
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(new DOMException("the check timed out", "TimeoutError")), timeout);
      try {
        check = await doFetch(checkUrl, { method: "POST", headers, body: '{"cost":1}', signal: abort.signal });
        if (check.status === 200) decision = (await check.json()) as Decision;
      } finally {
        clearTimeout(timer);
      }
      if (check.status === 200) {
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
    }
    if (failure !== undefined) {
      log.warn(`usage limits not checked: ${failOpen ? "serving the call (fail open)" : "refusing the call (fail closed)"}`, { reason: failure });
      if (!failOpen) {
        return problem(503, "unavailable", "Service Unavailable", "the usage limits could not be checked; try again", { "Retry-After": "1" });
      }
      decision = undefined;
      check = undefined;
    }

    const limitHeaders = check !== undefined ? copy(check.headers, LIMIT_HEADERS) : undefined;
    if (decision !== undefined && !decision.allowed) {
      limitHeaders!.set("Retry-After", check!.headers.get("Retry-After") ?? String(Math.max(1, decision.retry_after_seconds)));
      return refusal(decision, limitHeaders!);
    }
    if (decision !== undefined) decisions.set(req, decision);

    // Served: record once the body is out.
    let done!: () => void;
    const recorded = new Promise<void>((r) => (done = r));
    const finish = (status: number, bytes: number) => {
      const method = normalizeMethod(req.method);
      const id = opts.identify?.(req) ?? bearerSubject(authorization);
      tracker.record(
        {
          user_id: id?.user_id,
          api_key_id: id?.api_key_id,
          endpoint: fixed ?? normalizeEndpoint(method + " " + (route ?? new URL(req.url).pathname)),
          method,
          status_code: clampStatus(status),
          latency_ms: Math.floor(performance.now() - start),
          request_bytes: Math.max(0, Number(req.headers.get("content-length")) || 0),
          response_bytes: bytes,
          occurred_at: at,
        },
        apiKey,
      );
      done();
    };
    if (opts.after !== undefined || opts.waitUntil !== undefined) {
      const task = async () => {
        await recorded;
        if (flushAfter) await tracker.flush();
      };
      if (opts.after !== undefined) opts.after(task);
      else opts.waitUntil!(task());
    }

    let res: Response;
    try {
      res = await handler(req, ...args);
    } catch (err) {
      finish(500, 0);
      throw err;
    }
    if (res.type === "error") {
      finish(500, 0);
      return res;
    }
    const headers = new Headers(res.headers);
    if (limitHeaders !== undefined) for (const [k, v] of limitHeaders) headers.set(k, v);
    const init = { status: res.status, statusText: res.statusText, headers };
    if (res.body === null) {
      finish(res.status, 0);
      return new Response(null, init);
    }
    return new Response(counted(res.body, (n) => finish(res.status, n)), init);
  };
}

/** counted passes a body through, calling done with its size once it was sent, or cut off. */
function counted(body: ReadableStream<Uint8Array>, done: (bytes: number) => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let n = 0;
  let finished = false;
  const end = () => {
    if (!finished) {
      finished = true;
      done(n);
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      try {
        const { value, done: eof } = await reader.read();
        if (eof) {
          c.close();
          end();
          return;
        }
        n += value.byteLength;
        c.enqueue(value);
      } catch (err) {
        end();
        c.error(err);
      }
    },
    cancel(reason) {
      // The client went away: the call was served as far as it went.
      end();
      return reader.cancel(reason);
    },
  });
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
