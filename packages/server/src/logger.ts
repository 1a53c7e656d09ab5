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

export type { Logger };
