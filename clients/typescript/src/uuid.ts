// UUIDv7 (RFC 9562): a 48-bit Unix time in milliseconds, then random bits.
// Ids made here are time-ordered, which keeps the record path's key index
// inserts local, and unique per event: the event id is the idempotency key,
// so a retried send is a duplicate, never a second call.

let lastMs = 0;
let seq = 0;
const bytes = new Uint8Array(16);
// Random bytes are drawn 4 KiB at a time: one call to the system's source
// per 409 ids instead of one per id.
const pool = new Uint8Array(4096);
let poolAt = pool.length;
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * uuidv7 returns a new UUIDv7. Within one process the ids are strictly
 * increasing: ids of the same millisecond count up in the 12 bits after
 * the time (method 1 of RFC 9562, section 6.2), started at a random value
 * below 2048 each millisecond, and a millisecond whose 4096 ids are used
 * borrows the next one.
 */
export function uuidv7(now: number = Date.now()): string {
  if (poolAt + 10 > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  // bytes 6–15 random (6 and 7 seed the counter); 0–5 are the time.
  bytes.set(pool.subarray(poolAt, poolAt + 10), 6);
  poolAt += 10;
  if (now > lastMs) {
    lastMs = now;
    seq = ((bytes[6]! << 8) | bytes[7]!) & 0x7ff;
  } else if (++seq > 0xfff) {
    lastMs++;
    seq = 0;
  }
  const ms = lastMs;
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff;
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff;
  bytes[2] = (ms >>> 24) & 0xff;
  bytes[3] = (ms >>> 16) & 0xff;
  bytes[4] = (ms >>> 8) & 0xff;
  bytes[5] = ms & 0xff;
  bytes[6] = 0x70 | (seq >> 8);
  bytes[7] = seq & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const h = HEX;
  const b = bytes;
  return (
    h[b[0]!]! + h[b[1]!]! + h[b[2]!]! + h[b[3]!]! + "-" + h[b[4]!]! + h[b[5]!]! + "-" + h[b[6]!]! + h[b[7]!]! + "-" +
    h[b[8]!]! + h[b[9]!]! + "-" + h[b[10]!]! + h[b[11]!]! + h[b[12]!]! + h[b[13]!]! + h[b[14]!]! + h[b[15]!]!
  );
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** isUUID reports whether s is a UUID in its canonical textual form. */
export function isUUID(s: string): boolean {
  return UUID.test(s);
}
