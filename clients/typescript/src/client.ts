import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./openapi.js";

export type { components, paths } from "./openapi.js";
export { formatMoney, minorDigits } from "./money.js";

/** UsageClient is the typed client of the usage API (api/openapi.yaml), through openapi-fetch. */
export type UsageClient = Client<paths>;

/** UsageSummary is the answer of GET /v1/usage. */
export type UsageSummary = components["schemas"]["UsageSummary"];

export interface UsageClientOptions {
  /** The usage API (the stack's ApiUrl; locally http://127.0.0.1:8080). */
  baseUrl: string;
  /** The caller's API key (X-Api-Key) … */
  apiKey?: string;
  /** … or bearer token (a JWT of the platform's identity provider). */
  token?: string;
  fetch?: typeof fetch;
}

/**
 * createUsageClient returns a client of the usage API whose paths,
 * parameters and answers are typed from the API's OpenAPI document:
 *
 *     const usage = createUsageClient({ baseUrl, apiKey });
 *     const { data, error } = await usage.GET("/v1/usage");
 *     // data: the period, plan, quota …; error: the problem+json of a 4xx/5xx
 *
 * It imports nothing of the tracker (no AWS SDK), so a browser bundle can
 * use it ("@nexus/usage/client").
 */
export function createUsageClient(opts: UsageClientOptions): UsageClient {
  const headers: Record<string, string> = {};
  if (opts.apiKey !== undefined) headers["X-Api-Key"] = opts.apiKey;
  if (opts.token !== undefined) headers["Authorization"] = `Bearer ${opts.token}`;
  return createClient<paths>({ baseUrl: opts.baseUrl.replace(/\/+$/, ""), headers, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
}
