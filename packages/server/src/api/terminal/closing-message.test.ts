import { describe, expect, it } from 'vitest';
import { closingMessage } from './closing-message.js';

describe('closingMessage: what the browser terminal says when the shell closes', () => {
  it('an ended session names who ended it, as the gateway said, as ended by the gateway', () => {
    const tail = 'last output\r\ngatehouse: admin ended this session: maintenance\r\n';
    expect(closingMessage(255, true, tail)).toEqual({
      type: 'exit',
      code: 255,
      message: 'admin ended this session: maintenance',
      endedBy: 'gateway',
    });
  });

  it('a refusal before the device said anything is an error with the gateway reason', () => {
    const tail = 'gatehouse: web-box refused the shell channel: Connection refused\r\n';
    expect(closingMessage(255, false, tail)).toEqual({ type: 'error', message: 'web-box refused the shell channel: Connection refused' });
    expect(closingMessage(null, false, '')).toMatchObject({ type: 'error' });
  });

  it("the shell's own exit, 255 included when the gateway said nothing, ends as the device's", () => {
    expect(closingMessage(0, true, '')).toEqual({
      type: 'exit',
      code: 0,
      message: 'The session ended (exit status 0).',
      endedBy: 'device',
    });
    expect(closingMessage(255, true, 'ssh: connect to host x: refused\r\n')).toMatchObject({ endedBy: 'device', code: 255 });
  });
});
