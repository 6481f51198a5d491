// Metering for this app's routes: one tracker per process, reporting each
// served call with the caller's API key (POST /v1/events), and withUsage in
// front of every metered route handler.
import { after } from "next/server";
import { Tracker, httpTransport, withUsage } from "@nexus/usage";

/** The Nexus Usage API (the stack's ApiUrl; make dev's local API Gateway). */
export const usageUrl = process.env.NEXUS_USAGE_URL ?? "http://127.0.0.1:8080";

// One tracker per process, also across Next's module reloads in development.
const g = globalThis as { nexusTracker?: Tracker };
export const tracker = (g.nexusTracker ??= new Tracker({ transport: httpTransport({ baseUrl: usageUrl }) }));

/**
 * metered wraps a route handler: the caller's limits are checked first
 * (429 with Retry-After when refused), every answer carries the rate limit
 * headers, and the served call is recorded under route and sent from
 * after(), once the response is out.
 */
export function metered<A extends unknown[]>(route: string, handler: (req: Request, ...args: A) => Response | Promise<Response>) {
  return withUsage(handler, { usageUrl, tracker, route, after, timeoutMs: 2000 });
}
