/** Logger receives the tracker's and the wrapper's reports, with fields. */
export interface Logger {
  error(msg: string, fields: Record<string, unknown>): void;
  warn(msg: string, fields: Record<string, unknown>): void;
  info(msg: string, fields: Record<string, unknown>): void;
}

/**
 * jsonLogger writes one JSON object a line to standard error (console.error):
 * {"level":"error","msg":…,…fields}. Lines about unsent events carry the
 * whole event under "event", so that they can be replayed (eventsFromLog).
 */
export const jsonLogger: Logger = {
  error: (msg, fields) => console.error(JSON.stringify({ level: "error", msg, ...fields })),
  warn: (msg, fields) => console.error(JSON.stringify({ level: "warn", msg, ...fields })),
  info: (msg, fields) => console.error(JSON.stringify({ level: "info", msg, ...fields })),
};
