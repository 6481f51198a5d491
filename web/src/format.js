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

const moneyFormats = new Map();

function moneyFormat(currency) {
  const code = (currency || 'usd').toUpperCase();
  let f = moneyFormats.get(code);
  if (!f) {
    try {
      f = new Intl.NumberFormat(LOCALE, { style: 'currency', currency: code });
    } catch {
      f = null; // not an ISO 4217 code: shown as a plain number and the code
    }
    moneyFormats.set(code, f);
  }
  return [f, code];
}

/**
 * money formats an amount in the currency's minor unit (cents for USD, yen
 * for JPY) as that currency: money(1250, 'usd') is "$12.50".
 */
export function money(minor, currency) {
  if (minor == null) return '—';
  const [f, code] = moneyFormat(currency);
  if (!f) return `${num(minor)} ${code} minor units`;
  const digits = f.resolvedOptions().maximumFractionDigits;
  return f.format(minor / 10 ** digits);
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
