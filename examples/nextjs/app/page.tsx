// The signed-in user's usage, read through the typed client of the usage
// API (GET /v1/usage), on the server: the API key never reaches the browser.
import { cookies } from "next/headers";
import { createUsageClient, formatMoney } from "@nexus/usage/client";
import { usageUrl } from "@/lib/usage";
import { signIn, signOut } from "./actions";

export const dynamic = "force-dynamic";

const n = (v: number) => v.toLocaleString("en-US");

export default async function Page() {
  const key = (await cookies()).get("nexus_api_key")?.value;
  if (!key) {
    return (
      <main>
        <h1>Nexus Usage example</h1>
        <p>Sign in with your API key to see your usage. The metered routes are <code>GET /api/games</code>,{" "}
          <code>GET /api/games/{"{id}"}</code> and <code>POST /api/scores</code> (send the key as <code>X-Api-Key</code>).</p>
        <form action={signIn}>
          <label>API key <input name="api_key" type="password" autoComplete="off" required /></label>{" "}
          <button type="submit">Sign in</button>
        </form>
      </main>
    );
  }
  const usage = createUsageClient({ baseUrl: usageUrl, apiKey: key });
  const { data, error, response } = await usage.GET("/v1/usage");
  return (
    <main>
      <h1>Your usage</h1>
      {data ? (
        <>
          <p data-testid="plan">Plan: <strong>{data.plan_name}</strong> ({data.hard_limit ? "hard" : "soft"} limit)</p>
          <p>Billing period: {data.period.start.slice(0, 10)} to {data.period.end.slice(0, 10)} (UTC)</p>
          <table>
            <tbody>
              <tr><th scope="row">Calls used</th><td data-testid="used">{n(data.used)}</td></tr>
              <tr><th scope="row">Included</th><td data-testid="included">{n(data.included)}</td></tr>
              <tr><th scope="row">Remaining</th><td>{n(data.remaining)}</td></tr>
              <tr><th scope="row">Overage to date</th><td>{n(data.overage_to_date.billable_calls)} calls, {formatMoney(data.overage_to_date.amount, data.overage_to_date.currency)}</td></tr>
              <tr><th scope="row">Rate limit</th><td>{n(data.rate_limit.rate_per_second)} calls/s, burst {n(data.rate_limit.burst)}</td></tr>
            </tbody>
          </table>
        </>
      ) : (
        <p role="alert">The usage could not be read ({response.status}): {error && "detail" in error ? String(error.detail) : "try again"}</p>
      )}
      <form action={signOut}><button type="submit">Sign out</button></form>
    </main>
  );
}
