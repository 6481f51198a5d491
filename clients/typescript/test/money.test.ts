// formatMoney shows the API's amounts (minor units as Stripe counts them)
// as the dashboard does, and counts decimals by the same table as the
// dashboard's web/src/format.js, which shared/dashboard's Go test holds
// to Go's usage.CurrencyDecimals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { formatMoney, minorDigits } from "../src/index.js";

test("formatMoney: minor units as Stripe counts them, not as Intl does", () => {
  const cases: [number, string, string][] = [
    [1250, "usd", "$12.50"],
    [1200, "jpy", "¥1,200"],
    [5120, "kwd", "KWD\u00a05.120"],
    [500, "huf", "HUF\u00a05"],
    [550, "huf", "HUF\u00a05.50"],
    [100_000, "idr", "IDR\u00a01,000"],
    [500, "isk", "ISK\u00a05"],
    [250_000, "ugx", "UGX\u00a02,500"],
    [500, "mga", "MGA\u00a0500"],
    [-1050, "eur", "-€10.50"],
    [1234, "abc", "ABC\u00a012.34"],
  ];
  for (const [minor, currency, want] of cases) assert.equal(formatMoney(minor, currency), want, `formatMoney(${minor}, ${currency})`);
});

test("minorDigits: the dashboard's table", async () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
  const web = (await import(path.join(root, "web/src/format.js"))) as { minorDigits: (c: string) => number };
  const codes = ["usd", "eur", "gbp", "jpy", "krw", "vnd", "clp", "bif", "djf", "gnf", "kmf", "mga", "pyg", "rwf", "vuv",
    "xaf", "xof", "xpf", "bhd", "jod", "kwd", "omr", "tnd", "isk", "ugx", "huf", "twd", "idr", "cop", "lbp", "iqd", "lak"];
  for (const c of codes) assert.equal(minorDigits(c), web.minorDigits(c), c);
});
