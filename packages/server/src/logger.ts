import pino, { type DestinationStream, type Logger } from 'pino';

/** Paths pino blanks out wherever they appear in a log object. */
export const redactPaths = [
  'password',
  '*.password',
  'newPassword',
  '*.newPassword',
  'privateKey',
  '*.privateKey',
  'passphrase',
  '*.passphrase',
  'extraCredential',
  '*.extraCredential',
  'token',
  '*.token',
  'totp',
  '*.totp',
  'secret',
  '*.secret',
  'masterKey',
  '*.masterKey',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      redact: { paths: redactPaths, censor: '[redacted]' },
      serializers: {
        // Log the method and route, never the query string (it may hold a token).
        req: (req: { method?: string; url?: string; ip?: string }) => ({
          method: req.method,
          url: req.url?.split('?')[0],
          ip: req.ip,
        }),
      },
    },
    destination,
  );
}

/** Keys every line has that a terminal reader does not need. */
const TEXT_OMITTED = new Set(['level', 'time', 'pid', 'hostname', 'service', 'msg', 'reqId']);
const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * One pino JSON line as one line a person reads on a terminal: time, level, message, then
 * the other fields as key=value (an error's stack below it at error level and above).
 * Redaction has already happened: what pino blanked stays blanked.
 */
export function formatLogLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = typeof entry.level === 'number' ? entry.level : 30;
  const time = new Date(typeof entry.time === 'number' ? entry.time : Date.now()).toTimeString().slice(0, 8);
  const fields: string[] = [];
  let stack = '';
  for (const [key, value] of Object.entries(entry)) {
    if (TEXT_OMITTED.has(key) || value === undefined) continue;
    if (key === 'err' && value !== null && typeof value === 'object') {
      const err = value as { message?: unknown; stack?: unknown };
      fields.push(`err=${JSON.stringify(String(err.message))}`);
      if (level >= 50 && typeof err.stack === 'string') stack = `\n    ${err.stack.split('\n').join('\n    ')}`;
      continue;
    }
    const plain = typeof value === 'string' && /^[^\s"=]+$/.test(value);
    fields.push(`${key}=${plain ? value : JSON.stringify(value)}`);
  }
  const name = (LEVEL_NAMES[level] ?? String(level)).padEnd(5);
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  return `${time} ${name} ${[msg, ...fields].filter(Boolean).join('  ')}${stack}\n`;
}

/** A pino destination that writes `formatLogLine`'s lines to `out` (a terminal). */
export function textLogDestination(out: { write(text: string): unknown }): DestinationStream {
  return { write: (line: string) => void out.write(formatLogLine(line)) };
}

export type { Logger };
