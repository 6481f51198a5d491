// The normalisation rules of the Go middleware (shared/usage: NormalizeMethod,
// NormalizeEndpoint, PrintableRune; shared/meter: clamping the status, the
// latency and the byte counts). Both languages pass the cases of
// shared/usage/testdata/normalize.json.

/** The longest endpoint, in bytes of UTF-8. */
export const MAX_ENDPOINT_BYTES = 256;
/** The method recorded for a request whose method is none of the standard ones. */
export const METHOD_OTHER = "OTHER";
/** The endpoint recorded for a request that names none. */
export const NO_ENDPOINT = "(none)";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"]);

/**
 * normalizeMethod returns the method an event records: the standard HTTP
 * method named (upper-cased character by character, as Go's
 * strings.ToUpper does), or "OTHER".
 */
export function normalizeMethod(method: string): string {
  let up: string;
  if (/^[\x00-\x7f]*$/.test(method)) {
    up = method.toUpperCase();
  } else {
    // Simple case mapping only: "ſ" is "S", but "ﬆ" (whose full upper case
    // is "ST") stays itself.
    up = "";
    for (const ch of method) {
      const u = ch.toUpperCase();
      up += [...u].length === 1 ? u : ch;
    }
  }
  return METHODS.has(up) ? up : METHOD_OTHER;
}

/** clampStatus clamps a status into 100–599, as the Go middleware does. */
export function clampStatus(status: number): number {
  return Math.min(Math.max(status, 100), 599);
}

/** The longest latency_ms of an event, one hour (shared/usage/event.go). */
export const MAX_LATENCY_MS = 3_600_000;
/** The largest request_bytes and response_bytes of an event, 1 TiB. */
export const MAX_TRANSFER_BYTES = 2 ** 40;

/**
 * clampLatency returns the latency_ms an event records for a call that
 * took ms: whole milliseconds within 0–3,600,000, as the Go middleware
 * clamps it (a stream held open for hours is counted, at an hour).
 */
export function clampLatency(ms: number): number {
  return clampInt(ms, MAX_LATENCY_MS);
}

/**
 * clampBytes returns the request_bytes or response_bytes an event records
 * for n bytes: a whole number within 0–2^40, as the Go middleware clamps
 * it (a client may declare any Content-Length for a body never read).
 */
export function clampBytes(n: number): number {
  return clampInt(n, MAX_TRANSFER_BYTES);
}

function clampInt(v: number, hi: number): number {
  return v > 0 ? Math.min(Math.floor(v), hi) : 0; // NaN is 0 too
}

const CF = /^\p{Cf}$/u;

/**
 * isPrintable reports whether a code point may appear in an event's text
 * (Go's usage.PrintableRune): not a C0 or C1 control or DEL, not U+FFFD,
 * not a format character (category Cf: bidirectional overrides and
 * isolates, zero-width characters, the soft hyphen, tags …), not U+2028 or
 * U+2029, not a noncharacter.
 */
export function isPrintable(r: number): boolean {
  if (r === 0xfffd || r < 0x20 || (r >= 0x7f && r <= 0x9f)) return false;
  if ((r >= 0xfdd0 && r <= 0xfdef) || (r & 0xfffe) === 0xfffe) return false;
  if (r === 0x2028 || r === 0x2029) return false;
  if (r < 0xad) return true;
  return !CF.test(String.fromCodePoint(r));
}

const encoder = new TextEncoder();
const HEX = "0123456789ABCDEF";

/**
 * normalizeEndpoint returns an endpoint the record path accepts for any
 * text (or bytes) seen as a request's route: every character that does not
 * show as itself, and every byte of invalid UTF-8, is percent-encoded
 * (%01, %E2%80%8B), and the result is cut to 256 bytes at a character
 * boundary, never inside an escape. An empty endpoint becomes "(none)".
 * Lone surrogates in a string are what TextEncoder makes of them, U+FFFD,
 * and are escaped as such.
 */
export function normalizeEndpoint(endpoint: string | Uint8Array): string {
  if (typeof endpoint === "string" && endpoint.length <= MAX_ENDPOINT_BYTES && /^[\x20-\x7e]+$/.test(endpoint)) {
    return endpoint; // the common case: printable ASCII that fits
  }
  const b = typeof endpoint === "string" ? encoder.encode(endpoint) : endpoint;
  let out = "";
  let size = 0;
  for (let i = 0; i < b.length; ) {
    const [r, n] = decodeRune(b, i);
    let piece: string;
    let len: number;
    if (isPrintable(r)) {
      piece = String.fromCodePoint(r);
      len = n;
    } else {
      piece = "";
      for (let j = i; j < i + n; j++) piece += "%" + HEX[b[j]! >> 4] + HEX[b[j]! & 15];
      len = 3 * n;
    }
    if (size + len > MAX_ENDPOINT_BYTES) break;
    out += piece;
    size += len;
    i += n;
  }
  return size === 0 ? NO_ENDPOINT : out;
}

/**
 * decodeRune decodes the UTF-8 sequence at b[i] as Go's utf8.DecodeRune
 * does: [code point, length], or [0xFFFD, 1] for a byte that does not
 * start a valid, shortest, non-surrogate sequence.
 */
function decodeRune(b: Uint8Array, i: number): [number, number] {
  const b0 = b[i]!;
  if (b0 < 0x80) return [b0, 1];
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    return cont(1) ? [((b0 & 0x1f) << 6) | (b[i + 1]! & 0x3f), 2] : [0xfffd, 1];
  }
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const lo = b0 === 0xe0 ? 0xa0 : 0x80;
    const hi = b0 === 0xed ? 0x9f : 0xbf;
    if (!cont(1, lo, hi) || !cont(2)) return [0xfffd, 1];
    return [((b0 & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f), 3];
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const lo = b0 === 0xf0 ? 0x90 : 0x80;
    const hi = b0 === 0xf4 ? 0x8f : 0xbf;
    if (!cont(1, lo, hi) || !cont(2) || !cont(3)) return [0xfffd, 1];
    return [((b0 & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f), 4];
  }
  return [0xfffd, 1];
}
