import { DEFAULT_BACKFILL_WINDOW_MS, EventError, toWire, type UsageEvent, type WireEvent } from "./event.js";
import { jsonLogger, type Logger } from "./log.js";

/** Pending is an event on its way: as sent, and the API key it is sent with (POST /v1/events). */
export interface Pending {
  readonly wire: WireEvent;
  readonly apiKey?: string;
}

/** SendOutcome is what became of the events a transport was given. */
export interface SendOutcome {
  /** Events that may go through later: try them again. */
  retry: Pending[];
  /** Events the far side refused for good (an invalid event, a revoked key), with its reason. */
  rejected: { item: Pending; reason: string }[];
  /** How long the far side asked to be left alone (429 Retry-After), in ms. */
  retryAfterMs?: number;
  /** What went wrong with the events to retry, in our words. */
  error?: string;
}

/** Transport sends events: sqsTransport (the usage queue) or httpTransport (POST /v1/events). */
export interface Transport {
  readonly name: string;
  /** Whether events must name their user (the queue) or go with an API key (POST /v1/events). */
  readonly needs: "user_id" | "api_key";
  /**
   * send sends the events, in as few requests as their limits allow, and
   * gives up on what is left when signal aborts (those are to retry). It
   * does not throw.
   */
  send(items: Pending[], signal?: AbortSignal): Promise<SendOutcome>;
}

/** TrackerOptions tune a Tracker; only transport is required. */
export interface TrackerOptions {
  transport: Transport;
  /** Buffered events that trigger a send (default 100). */
  batchSize?: number;
  /** How long an event may wait in the buffer before a send (default 5000 ms). */
  maxAgeMs?: number;
  /** Events buffered and in flight at most (default 10 × batchSize); beyond, record refuses and logs them. */
  bufferSize?: number;
  /** Sends of an event within one flush (default 5); what still fails stays buffered for the next. */
  maxAttempts?: number;
  /** The first retry's delay, doubled on each further one, with up to 50 % jitter (default 100 ms). */
  backoffMs?: number;
  /** How long close() keeps retrying what is buffered (default 5000 ms). */
  closeTimeoutMs?: number;
  /** How old an event may be (default 35 days, the record function's BACKFILL_WINDOW). */
  backfillWindowMs?: number;
  /**
   * Signals on which the tracker closes (sends what it holds, for up to
   * closeTimeoutMs) and then lets the signal end the process, e.g.
   * ["SIGTERM", "SIGINT"]. Default: none, and the process's owner calls close().
   */
  signals?: readonly NodeJS.Signals[];
  logger?: Logger;
  /** The clock (default Date.now). */
  now?: () => number;
}

/** TrackerStats counts what became of the events given to record. */
export interface TrackerStats {
  /** Events accepted into the buffer. */
  recorded: number;
  /** Events the transport delivered. */
  sent: number;
  /** Events refused by record: invalid (named field) or the buffer full. Each was logged whole. */
  refused: number;
  /** Events the far side refused for good. Each was logged whole. */
  rejected: number;
  /** Events given up at close (or by signal) after the retries. Each was logged whole. */
  lost: number;
  /** Events buffered or in flight now. */
  pending: number;
}

/** The message of every log line that holds an event not counted. */
export const NOT_COUNTED = "usage event not sent: the call was served but is not counted; replay this event";

/** soon runs f after the work under way (setImmediate, or a zero timeout where there is none). */
const soon: (f: () => void) => void = typeof setImmediate === "function" ? (f) => void setImmediate(f) : (f) => void setTimeout(f, 0);

/**
 * Tracker batches usage events and sends them through a transport.
 * record never blocks and never throws; flush and close send what is
 * buffered. Every event refused or given up is counted and logged whole,
 * with NOT_COUNTED as the message, so that it can be replayed (its
 * event_id makes a replay harmless).
 */
export class Tracker {
  readonly #t: Transport;
  readonly #batch: number;
  readonly #maxAge: number;
  readonly #bound: number;
  readonly #attempts: number;
  readonly #backoff: number;
  readonly #closeTimeout: number;
  readonly #backfill: number;
  readonly #log: Logger;
  readonly #now: () => number;
  #buf: Pending[] = [];
  #inFlight = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #chain: Promise<void> = Promise.resolve();
  #kicked = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #deadline = Infinity;
  /**
   * The send under way's abort, aborted at close's deadline. One a send,
   * not one for the tracker's life: fetch's signal follows it, and a
   * long-lived signal keeps what follows it alive.
   */
  #sending: AbortController | undefined;
  #expired = false;
  /** Ends the wait between two tries early (close() calls it). */
  #wake: (() => void) | undefined;
  #stats = { recorded: 0, sent: 0, refused: 0, rejected: 0, lost: 0 };
  #signalHandlers: [NodeJS.Signals, () => void][] = [];

  constructor(opts: TrackerOptions) {
    this.#t = opts.transport;
    this.#batch = Math.max(1, opts.batchSize ?? 100);
    this.#maxAge = Math.max(1, opts.maxAgeMs ?? 5000);
    this.#bound = Math.max(this.#batch, opts.bufferSize ?? 10 * this.#batch);
    this.#attempts = Math.max(1, opts.maxAttempts ?? 5);
    this.#backoff = Math.max(1, opts.backoffMs ?? 100);
    this.#closeTimeout = Math.max(0, opts.closeTimeoutMs ?? 5000);
    this.#backfill = opts.backfillWindowMs ?? DEFAULT_BACKFILL_WINDOW_MS;
    this.#log = opts.logger ?? jsonLogger;
    this.#now = opts.now ?? Date.now;
    for (const sig of opts.signals ?? []) {
      const h = () => this.#onSignal(sig);
      process.once(sig, h);
      this.#signalHandlers.push([sig, h]);
    }
  }

  get transport(): Transport {
    return this.#t;
  }

  /**
   * record buffers one event and returns true, or refuses it and returns
   * false: an event the record path would quarantine (the log names the
   * field), a full buffer, a closed tracker. It sets event_id (a UUIDv7)
   * and occurred_at (now) when they are absent. apiKey is the caller's
   * key, which POST /v1/events needs.
   */
  record(event: UsageEvent, apiKey?: string): boolean {
    let wire: WireEvent;
    try {
      wire = toWire(event, this.#now(), this.#backfill, this.#t.needs === "user_id");
    } catch (err) {
      const reason = err instanceof EventError ? err.message : String(err);
      this.#stats.refused++;
      this.#log.error(NOT_COUNTED, { reason: `invalid event: ${reason}`, event, refused_total: this.#stats.refused });
      return false;
    }
    const item: Pending = apiKey === undefined ? { wire } : { wire, apiKey };
    if (this.#t.needs === "api_key" && !apiKey) {
      return this.#refuse(item, "no API key to send it with (POST /v1/events takes API keys only)");
    }
    if (this.#closed) return this.#refuse(item, "the tracker is closed");
    if (this.#buf.length + this.#inFlight >= this.#bound) {
      return this.#refuse(item, `the buffer is full (${this.#bound} events buffered or in flight)`);
    }
    this.#buf.push(item);
    this.#stats.recorded++;
    if (this.#buf.length >= this.#batch) {
      this.#kick();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.flush();
      }, this.#maxAge);
      (this.#timer as { unref?: () => void }).unref?.();
    }
    return true;
  }

  /**
   * flush sends every event buffered now, retrying with backoff, and
   * resolves when they are sent, refused, or (after maxAttempts) back in
   * the buffer for the next flush. Flushes run one after the other, each
   * taking all that is buffered when it starts, so concurrent callers
   * share requests. It never rejects.
   */
  flush(): Promise<void> {
    const run = this.#chain.then(() => this.#sendBuffered());
    this.#chain = run;
    return run;
  }

  /**
   * close stops taking events and sends what is buffered, retrying for up
   * to closeTimeoutMs: a flush under way stops waiting out its backoff or
   * Retry-After and tries again at once, and a send still unanswered at
   * the deadline is aborted. What is still unsent then is counted as lost
   * and logged whole. It resolves when done; calling it again returns the same
   * promise.
   */
  close(timeoutMs: number = this.#closeTimeout): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      this.#deadline = this.#now() + timeoutMs;
      clearTimeout(this.#timer);
      this.#timer = undefined;
      for (const [sig, h] of this.#signalHandlers) process.off(sig, h);
      // A flush under way may be waiting out a long Retry-After, or in a
      // send that does not answer: close's deadline bounds both.
      const stop = setTimeout(() => {
        this.#expired = true;
        this.#sending?.abort();
      }, timeoutMs);
      this.#wake?.();
      await this.flush();
      clearTimeout(stop);
      const left = this.#buf.splice(0);
      for (const item of left) this.#lose(item, "not sent before the tracker closed");
    })();
    return this.#closing;
  }

  /** stats returns the tracker's counts. */
  stats(): TrackerStats {
    return { ...this.#stats, pending: this.#buf.length + this.#inFlight };
  }

  #kick(): void {
    if (this.#kicked) return;
    this.#kicked = true;
    // A full batch is sent once the work under way has finished (the
    // macrotask after it), not in its microtasks: the send's own steps
    // (its JSON, its request) would otherwise run inside the response
    // that recorded the hundredth event, before its last bytes are read.
    soon(() => {
      this.#kicked = false;
      void this.flush();
    });
  }

  async #sendBuffered(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#buf.length === 0 || (this.#closed && this.#now() >= this.#deadline)) return;
    let items = this.#buf.splice(0);
    this.#inFlight += items.length;
    let attempt = 0;
    let error: string | undefined;
    try {
      for (;;) {
        let out: SendOutcome;
        try {
          const ac = (this.#sending = new AbortController());
          if (this.#expired) ac.abort();
          try {
            out = await this.#t.send(items, ac.signal);
          } finally {
            this.#sending = undefined;
          }
        } catch (err) {
          out = { retry: items, rejected: [], error: `the ${this.#t.name} transport failed: ${String(err)}` };
        }
        const done = items.length - out.retry.length;
        this.#stats.sent += done - out.rejected.length;
        this.#inFlight -= done;
        for (const { item, reason } of out.rejected) {
          this.#stats.rejected++;
          this.#log.error(NOT_COUNTED, { reason: `refused: ${reason}`, transport: this.#t.name, ...described(item), rejected_total: this.#stats.rejected });
        }
        items = out.retry;
        error = out.error;
        if (items.length === 0) return;
        attempt++;
        const now = this.#now();
        if (this.#closed ? this.#expired || now >= this.#deadline : attempt >= this.#attempts) break;
        let wait = out.retryAfterMs ?? this.#backoff * 2 ** (attempt - 1) * (1 + Math.random() / 2);
        if (this.#closed) wait = Math.min(wait, this.#deadline - now);
        await this.#sleep(wait);
      }
      // Still unsent: back to the front of the buffer, for the next flush
      // (or close, which gives them up).
      this.#inFlight -= items.length;
      this.#buf.unshift(...items);
      this.#log.warn("usage events not sent yet; kept for the next flush", { transport: this.#t.name, events: items.length, error });
      if (!this.#closed && this.#timer === undefined) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          void this.flush();
        }, this.#maxAge);
        (this.#timer as { unref?: () => void }).unref?.();
      }
    } catch (err) {
      // Only a bug gets here; never lose the events silently.
      this.#inFlight -= items.length;
      this.#buf.unshift(...items);
      this.#log.error("usage tracker failure", { error: String(err) });
    }
  }

  /** sleep waits ms, or less when close() is called meanwhile. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, Math.max(0, ms));
      const self = this;
      function done() {
        clearTimeout(t);
        if (self.#wake === done) self.#wake = undefined;
        resolve();
      }
      this.#wake = done;
    });
  }

  #refuse(item: Pending, reason: string): false {
    this.#stats.refused++;
    this.#log.error(NOT_COUNTED, { reason, ...described(item), refused_total: this.#stats.refused });
    return false;
  }

  #lose(item: Pending, reason: string): void {
    this.#stats.lost++;
    this.#log.error(NOT_COUNTED, { reason, transport: this.#t.name, ...described(item), lost_total: this.#stats.lost });
  }

  #onSignal(sig: NodeJS.Signals): void {
    this.#log.info(`usage tracker: ${sig}: sending the events it holds`, {
      events: this.#buf.length + this.#inFlight,
      in_flight: this.#inFlight,
      buffered: this.#buf.length,
      timeout_ms: this.#closeTimeout,
    });
    void this.close().then(() => {
      const s = this.stats();
      this.#log.info(`usage tracker: closed on ${sig}`, { sent: s.sent, lost: s.lost, rejected: s.rejected, refused: s.refused });
      // Let the signal do what it would have done, unless someone else
      // handles it (and so decides when the process ends).
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

/** The fields of a log line that describe an event: the whole event and the key's visible prefix. */
function described(item: Pending): Record<string, unknown> {
  return item.apiKey === undefined ? { event: item.wire } : { event: item.wire, api_key_prefix: item.apiKey.slice(0, 11) };
}


/**
 * eventsFromLog returns the events of the log lines (jsonLogger's) that
 * hold an event not counted, to record again: their event_id makes a
 * replay of an event that did arrive harmless.
 */
export function eventsFromLog(text: string): WireEvent[] {
  const out: WireEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line.includes(NOT_COUNTED)) continue;
    try {
      const o = JSON.parse(line) as { msg?: string; event?: WireEvent };
      if (o.msg === NOT_COUNTED && o.event && typeof o.event === "object") out.push(o.event);
    } catch {
      // not a line of ours
    }
  }
  return out;
}
