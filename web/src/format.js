// Numbers, money, bytes and dates for people. One fixed locale keeps the
// page's text the same on every machine (browser tests compare it).
const LOCALE = 'en-US';

const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat(LOCALE, { notation: 'compact', maximumFractionDigits: 1 });

/** num formats a count with thousands separators; null shows a dash. */
export function num(n) {
  return n == null || Number.isNaN(n) ? '—' : integer.format(n);
}

/** dec formats a number with at most two decimals (rates, latencies). */
export function dec(n) {
  return n == null ? '—' : decimal.format(n);
}

/** short formats an axis value: 12K, 1.5M. */
export function short(n) {
  return compact.format(n);
}

/** pct formats a ratio (0.1234) as a percentage with one decimal (12.3%). */
export function pct(ratio) {
  return ratio == null || !Number.isFinite(ratio) ? '—' : `${(ratio * 100).toFixed(1)}%`;
}

// Amounts come in the currency's minor unit as Stripe counts it, which is
// not always ISO 4217's (what Intl knows): Stripe counts HUF, IDR, COP,
// ISK, UGX and most others in hundredths, the zero-decimal currencies in
// units and five in thousandths. The same table as shared/usage's
// CurrencyDecimals (shared/dashboard's format_test.go checks both).
const ZERO_DECIMAL = new Set(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'vnd', 'vuv', 'xaf', 'xof', 'xpf']);
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

/** minorDigits is the decimals of a currency's minor unit as Stripe counts it. */
export function minorDigits(currency) {
  const c = (currency || 'usd').toLowerCase();
  if (ZERO_DECIMAL.has(c)) return 0;
  if (THREE_DECIMAL.has(c)) return 3;
  return 2;
}

const moneyFormats = new Map();

// moneyFormat is the currency's format with the given decimals (undefined:
// the currency's own), or null for a code Intl does not take.
function moneyFormat(code, digits) {
  const key = `${code}/${digits}`;
  let f = moneyFormats.get(key);
  if (f === undefined) {
    try {
      const opts = { style: 'currency', currency: code };
      if (digits !== undefined) Object.assign(opts, { minimumFractionDigits: digits, maximumFractionDigits: digits });
      f = new Intl.NumberFormat(LOCALE, opts);
    } catch {
      f = null; // not an ISO 4217 code: shown as a plain number and the code
    }
    moneyFormats.set(key, f);
  }
  return f;
}

/**
 * money formats an amount in the currency's minor unit as Stripe counts it
 * (cents for USD, yen for JPY, hundredths for HUF) as that currency:
 * money(1250, 'usd') is "$12.50", money(500, 'huf') "HUF 5". It shows the
 * currency's usual decimals (none for HUF), or Stripe's where the amount
 * needs them (money(550, 'huf') is "HUF 5.50").
 */
export function money(minor, currency) {
  if (minor == null) return '—';
  const code = (currency || 'usd').toUpperCase();
  const plain = moneyFormat(code);
  if (!plain) return `${num(minor)} ${code} minor units`;
  const digits = minorDigits(code);
  let shown = plain.resolvedOptions().maximumFractionDigits;
  if (shown > digits || minor % 10 ** (digits - shown) !== 0) shown = digits;
  return moneyFormat(code, shown).format(minor / 10 ** digits);
}

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

/** bytes formats a size in decimal units: 1500 is "1.5 KB". */
export function bytes(n) {
  if (n == null) return '—';
  let i = 0;
  let v = n;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${integer.format(v)} B` : `${decimal.format(Number(v.toPrecision(3)))} ${UNITS[i]}`;
}

/** date formats a timestamp (ISO text, Date or ms) as the UTC day YYYY-MM-DD. */
export function date(t) {
  if (t == null || t === '') return '—';
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString().slice(0, 10);
}

/** dateTime formats a timestamp as "YYYY-MM-DD HH:MM UTC". */
export function dateTime(t) {
  if (t == null || t === '') return '—';
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const s = d.toISOString();
  return `${s.slice(0, 10)} ${s.slice(11, 16)} UTC`;
}

/**
 * periodText formats a half-open period [start, end) as its first and last
 * day: "2026-11-01 – 2026-11-30".
 */
export function periodText(p) {
  if (!p?.start || !p?.end) return '—';
  const last = new Date(new Date(p.end).getTime() - 1);
  return `${date(p.start)} – ${date(last)}`;
}

const DAY_MS = 86400000;

/** today is the current UTC day, YYYY-MM-DD. */
export function today() {
  return date(new Date());
}

/** addDays moves a YYYY-MM-DD day by n days. */
export function addDays(day, n) {
  return date(new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS));
}

/** daysBetween counts the days from a to b, both YYYY-MM-DD, inclusive. */
export function daysBetween(a, b) {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / DAY_MS) + 1;
}
