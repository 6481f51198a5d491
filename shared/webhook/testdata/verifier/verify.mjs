// Verifies webhooks with the Standard Webhooks reference library: reads a
// JSON array of {secret, headers, body} on standard input and writes, for
// each, {"ok": true, "type": …} or {"ok": false, "error": …}.
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map(({ secret, headers, body }) => {
  try {
    const payload = new Webhook(secret).verify(body, headers);
    return { ok: true, type: payload.type };
  } catch (e) {
    return { ok: false, error: String(e.message ?? e) };
  }
});
process.stdout.write(JSON.stringify(out));
