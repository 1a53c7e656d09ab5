import { describe, expect, it } from 'vitest';
import { createLogger, formatLogLine, textLogDestination } from './logger.js';

describe('text log lines', () => {
  it('writes time, level, message and the other fields, with redacted secrets still redacted', () => {
    const lines: string[] = [];
    const logger = createLogger('debug', textLogDestination({ write: (t: string) => lines.push(t) }));
    logger.warn({ component: 'gateway', port: 7993, on: true, password: 'hunter2hunter2', note: 'two words' }, 'listening');
    logger.child({ reqId: 'req-1' }).debug('GET /healthz 200 3 ms');
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d WARN {2}listening {2}component=gateway {2}port=7993 {2}on=true {2}password=\[redacted\] {2}note="two words"\n$/,
    );
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d DEBUG GET \/healthz 200 3 ms\n$/);
    expect(lines.join('')).not.toContain('hunter2');
  });

  it("shows an error's message, and its stack at error level", () => {
    const lines: string[] = [];
    const logger = createLogger('info', textLogDestination({ write: (t: string) => lines.push(t) }));
    logger.warn({ err: new Error('retrying') }, 'break-glass run failed');
    logger.error({ err: new Error('disk full') }, 'could not write');
    expect(lines[0]).toMatch(/WARN {2}break-glass run failed {2}err="retrying"\n$/);
    expect(lines[1]).toMatch(/ERROR could not write {2}err="disk full"\n {4}Error: disk full\n {8}at /);
  });

  it('passes a line that is not JSON through', () => {
    expect(formatLogLine('plain text')).toBe('plain text\n');
  });
});
