// Amounts are in the currency's minor unit as Stripe counts it, which is
// not always ISO 4217's (what Intl knows): Stripe counts HUF, IDR, COP,
// ISK, UGX and most others in hundredths, the zero-decimal currencies in
// units and five in thousandths. The same table as Go's
// usage.CurrencyDecimals and the dashboard's web/src/format.js (the tests
// hold all three together).
const ZERO_DECIMAL = new Set(["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf", "xof", "xpf"]);
const THREE_DECIMAL = new Set(["bhd", "jod", "kwd", "omr", "tnd"]);

/** minorDigits is the decimals of a currency's minor unit as Stripe counts it (2 for USD and HUF, 0 for JPY, 3 for KWD). */
export function minorDigits(currency: string): number {
  const c = currency.toLowerCase();
  if (ZERO_DECIMAL.has(c)) return 0;
  if (THREE_DECIMAL.has(c)) return 3;
  return 2;
}

/**
 * formatMoney writes an amount of the usage API (overage_to_date.amount,
 * a ledger row's amount: the currency's minor unit as Stripe counts it) as
 * that currency for people: formatMoney(1250, "usd") is "$12.50",
 * formatMoney(1200, "jpy") "¥1,200", formatMoney(500, "huf") "HUF 5". It
 * shows the currency's usual decimals, or Stripe's where the amount needs
 * them (formatMoney(550, "huf") is "HUF 5.50"); a code Intl does not know
 * is written as a number of minor units and the code.
 */
export function formatMoney(minor: number, currency: string, locale = "en-US"): string {
  const code = currency.toUpperCase();
  let plain: Intl.NumberFormat;
  try {
    plain = new Intl.NumberFormat(locale, { style: "currency", currency: code });
  } catch {
    return `${new Intl.NumberFormat(locale).format(minor)} ${code} minor units`;
  }
  const digits = minorDigits(code);
  let shown = plain.resolvedOptions().maximumFractionDigits ?? digits;
  if (shown > digits || minor % 10 ** (digits - shown) !== 0) shown = digits;
  return new Intl.NumberFormat(locale, { style: "currency", currency: code, minimumFractionDigits: shown, maximumFractionDigits: shown }).format(
    minor / 10 ** digits,
  );
}
