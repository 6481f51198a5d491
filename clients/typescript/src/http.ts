import type { Pending, SendOutcome, Transport } from "./tracker.js";

export interface HttpTransportOptions {
  /** The usage API (the stack's ApiUrl; locally http://127.0.0.1:8080). */
  baseUrl: string;
  /** Events per request at most (default 100, the API's limit). */
  maxEventsPerRequest?: number;
  /** How long one request may take (default 10000 ms). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface EventsAnswer {
  results?: { index: number; status: string; param?: string; detail?: string }[];
  param?: string;
  detail?: string;
}

/**
 * httpTransport sends events with POST /v1/events, for services that hold
 * only API keys: each event goes with the API key of the caller whose call
 * it reports (the API attributes it to that key's user), up to 100 a
 * request. A report costs the key's rate limit one call per event: a
 * refusal (429) is retried after its Retry-After, and a request holding
 * more events than the key's burst (400 naming "events") is split until it
 * fits. Events the API rejects (their field named) and keys it refuses
 * (401, 403) are rejected; failures of the network or the API, and events a
 * 202 does not say were queued (failed, or no result for them), are
 * retried with the same ids.
 */
export function httpTransport(opts: HttpTransportOptions): Transport {
  const base = opts.baseUrl.replace(/\/+$/, "");
  const max = Math.min(100, Math.max(1, opts.maxEventsPerRequest ?? 100));
  const timeout = opts.timeoutMs ?? 10_000;
  const doFetch = opts.fetch ?? fetch;
  // The largest request each key's burst took, learnt from its 400s.
  const fits = new Map<string, number>();
  return {
    name: "http",
    needs: "api_key",
    async send(items: Pending[], signal?: AbortSignal): Promise<SendOutcome> {
      const out: SendOutcome = { retry: [], rejected: [] };
      const byKey = new Map<string, Pending[]>();
      for (const item of items) {
        const key = item.apiKey ?? "";
        const list = byKey.get(key);
        if (list) list.push(item);
        else byKey.set(key, [item]);
      }
      const done = new Set<string>();
      for (const [key, list] of byKey) {
        let queue = list;
        while (queue.length > 0) {
          const size = Math.min(max, fits.get(key) ?? max);
          const chunk = queue.slice(0, size);
          if (signal?.aborted) {
            out.retry.push(...queue);
            break;
          }
          let res: Response;
          let answer: EventsAnswer = {};
          try {
            const sig = signal ? AbortSignal.any([signal, AbortSignal.timeout(timeout)]) : AbortSignal.timeout(timeout);
            res = await doFetch(`${base}/v1/events`, {
              method: "POST",
              headers: { "X-Api-Key": key, "Content-Type": "application/json" },
              body: JSON.stringify({ events: chunk.map((i) => i.wire) }),
              signal: sig,
            });
            answer = ((await res.json().catch(() => ({}))) ?? {}) as EventsAnswer;
          } catch (err) {
            // The API cannot be reached: the rest waits for the next try.
            out.retry.push(...queue);
            for (const [k, rest] of byKey) if (k !== key && !done.has(k)) out.retry.push(...rest);
            out.error = `POST /v1/events failed: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`;
            return out;
          }
          if (res.status === 202) {
            const results = answer.results ?? [];
            chunk.forEach((item, i) => {
              const r = results.find((x) => x.index === i);
              if (r === undefined || r.status === "failed") {
                // The queue could not be reached for it, or the answer does
                // not say it was queued: send it again, with the same id.
                out.retry.push(item);
                out.error = `POST /v1/events could not queue an event: ${r === undefined ? "the answer holds no result for it" : (r.detail ?? "failed")}`;
              } else if (r.status !== "accepted") {
                out.rejected.push({ item, reason: `POST /v1/events rejected it: ${r.param ? r.param + ": " : ""}${r.detail ?? r.status}` });
              }
            });
            queue = queue.slice(size);
          } else if (res.status === 429) {
            // The key's rate limit: nothing more with it now.
            out.retry.push(...queue);
            const after = Number(res.headers.get("Retry-After"));
            out.retryAfterMs = Math.max(out.retryAfterMs ?? 0, (Number.isFinite(after) && after > 0 ? after : 1) * 1000);
            out.error = `POST /v1/events refused by the rate limit: ${answer.detail ?? "429"}`;
            break;
          } else if ((res.status === 400 && answer.param === "events") || res.status === 413) {
            if (size === 1) {
              for (const item of chunk) out.rejected.push({ item, reason: `POST /v1/events refused it: ${answer.detail ?? res.status}` });
              queue = queue.slice(1);
            } else {
              fits.set(key, Math.ceil(size / 2));
              if (fits.size > 10_000) fits.clear();
            }
          } else if (res.status === 400 || res.status === 401 || res.status === 403) {
            const why = res.status === 400 ? "refused the request" : "refused the API key";
            for (const item of queue) out.rejected.push({ item, reason: `POST /v1/events ${why} (${res.status}): ${answer.detail ?? ""}` });
            break;
          } else {
            out.retry.push(...queue);
            out.error = `POST /v1/events answered ${res.status}: ${answer.detail ?? ""}`;
            break;
          }
        }
        done.add(key);
      }
      return out;
    },
  };
}
