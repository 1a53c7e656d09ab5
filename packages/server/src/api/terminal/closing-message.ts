import type { TerminalMessage } from '@gatehouse/api';

/**
 * What the page is told when the shell's channel closes. The gateway ends a session it
 * refuses or stops (an administrator, a closing maintenance window, its own stop) with
 * `gatehouse: <reason>` on stderr and exit status 255: before the device said anything that
 * is a refusal (an error), after it the session was ended by the gateway, for the reason
 * that names who ended it (a warning). Any other status is the shell's own exit.
 */
export function closingMessage(code: number | null, spoke: boolean, stderrTail: string): TerminalMessage {
  const said = code === 255 || code === null ? /gatehouse: ([^\r\n]+)\r?\n?$/.exec(stderrTail)?.[1] : undefined;
  if (said !== undefined || code === null) {
    const message = said ?? 'The gateway closed the connection; what it said is in the terminal.';
    return spoke ? { type: 'exit', code, message, endedBy: 'gateway' } : { type: 'error', message };
  }
  return { type: 'exit', code, message: `The session ended (exit status ${code}).`, endedBy: 'device' };
}
