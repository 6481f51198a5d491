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
 * It never throws: what JSON cannot write is written as it can be (a
 * BigInt as its digits, a cycle as "[circular]").
 */
export const jsonLogger: Logger = {
  error: (msg, fields) => console.error(line("error", msg, fields)),
  warn: (msg, fields) => console.error(line("warn", msg, fields)),
  info: (msg, fields) => console.error(line("info", msg, fields)),
};

function line(level: string, msg: string, fields: Record<string, unknown>): string {
  const o = { level, msg, ...fields };
  try {
    return JSON.stringify(o);
  } catch {
    // A careless event (a BigInt, a cycle): the line is still the record of it.
    try {
      return JSON.stringify(o, lenient());
    } catch (err) {
      return JSON.stringify({ level, msg, log_error: `the fields could not be written: ${String(err)}` });
    }
  }
}

/** lenient is a JSON.stringify replacer for values JSON cannot write. */
function lenient(): (this: unknown, key: string, value: unknown) => unknown {
  const ancestors: unknown[] = [];
  return function (this: unknown, _key: string, value: unknown): unknown {
    if (typeof value === "bigint") return value.toString();
    if (typeof value !== "object" || value === null) return value;
    while (ancestors.length > 0 && ancestors[ancestors.length - 1] !== this) ancestors.pop();
    if (ancestors.includes(value)) return "[circular]";
    ancestors.push(value);
    return value;
  };
}
