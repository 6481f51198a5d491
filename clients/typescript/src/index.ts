// @nexus/usage: metering for TypeScript services on Nexus Usage.
//
//   Tracker         batches usage events (100 or 5 s), bounded, retried, flushed on close or a signal
//   sqsTransport    … to the usage queue (SendMessageBatch), for services with queue credentials
//   httpTransport   … to POST /v1/events, with each caller's API key
//   withUsage       a Web-standard route handler, checked (POST /v1/limits/check) and recorded
//   createUsageClient  the typed client of the usage API
//   formatMoney     an amount of the API (minor units, as Stripe counts them) for people
export { Tracker, NOT_COUNTED, eventsFromLog, type TrackerOptions, type TrackerStats, type Transport, type Pending, type SendOutcome } from "./tracker.js";
export { sqsTransport, pack, MAX_BATCH_ENTRIES, MAX_EVENTS_PER_MESSAGE, MAX_PAYLOAD_BYTES, type SqsTransportOptions } from "./sqs.js";
export { httpTransport, type HttpTransportOptions } from "./http.js";
export { withUsage, decisionOf, LIMIT_HEADERS, DECLARED_BODY_MAX, type Decision, type WithUsageOptions } from "./with-usage.js";
export { createUsageClient, type UsageClient, type UsageClientOptions, type UsageSummary, type paths, type components } from "./client.js";
export { normalizeMethod, normalizeEndpoint, clampStatus, clampLatency, clampBytes, isPrintable, MAX_ENDPOINT_BYTES, METHOD_OTHER, NO_ENDPOINT } from "./normalize.js";
export { uuidv7, isUUID } from "./uuid.js";
export { EventError, toWire, EVENT_VERSION, MAX_QUANTITY, MAX_LATENCY_MS, MAX_TRANSFER_BYTES, type UsageEvent, type WireEvent } from "./event.js";
export { jsonLogger, type Logger } from "./log.js";
export { formatMoney, minorDigits } from "./money.js";
