// A service process for the SIGTERM tests: a tracker on the usage queue
// that closes on SIGTERM, COUNT events recorded, then idle as a server
// between requests is. Its stdout says "recorded N" once they are
// buffered (or in flight); its stderr is the tracker's log.
import { SQSClient } from "@aws-sdk/client-sqs";
import { Tracker, sqsTransport } from "../src/index.js";

const env = (k: string) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const client = new SQSClient({
  endpoint: env("SQS_ENDPOINT"),
  region: env("REGION"),
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
  maxAttempts: 1,
});
const tracker = new Tracker({
  transport: sqsTransport({ queueUrl: env("USAGE_QUEUE_URL"), client }),
  batchSize: 100,
  maxAgeMs: 60_000, // nothing leaves by the timer: only a full batch, or the signal
  backoffMs: 50,
  closeTimeoutMs: Number(env("CLOSE_MS")),
  signals: ["SIGTERM"],
});
const count = Number(env("COUNT"));
for (let i = 0; i < count; i++) {
  // Calls come in over time: a full batch leaves while the next fills.
  if (i > 0 && i % 100 === 0) await new Promise((r) => setImmediate(r));
  tracker.record({ user_id: env("USER_ID"), endpoint: `GET /v1/sigterm/${i % 7}`, method: "GET", status_code: 200, latency_ms: i % 50 });
}
process.stdout.write(`recorded ${count}\n`);
setInterval(() => {}, 60_000);
