import type { AuthorizedTarget } from './broker.js';

/** A word the shell passes as it is; anything else goes in single quotes. */
const shellWord = (word: string) => (/^[\w./@:+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

/**
 * How an administrator forgets a device's changed key once they checked the new one: the
 * CLI command and the console page, never a raw API path (issue 22). Ends without a period.
 */
export function forgetKeyAdvice(
  target: Pick<AuthorizedTarget, 'projectName' | 'deviceName' | 'deviceId'>,
  protocol: 'ssh' | 'rdp' | 'vnc',
): string {
  const device = shellWord(`${target.projectName}/${target.deviceName}`);
  return (
    `./gatehouse devices host-key forget ${device} --protocol ${protocol}, ` +
    `or Forget under Host keys on the device's page in the console (/devices/${target.deviceId})`
  );
}
