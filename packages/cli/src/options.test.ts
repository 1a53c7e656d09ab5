import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './index.js';
import { wholeNumber, wholeNumberOption } from './options.js';

/** Runs the CLI in this process against an address nothing listens on; its exit code and what it wrote to stderr. */
async function run(...args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  });
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    const code = await main(['node', 'gatehouse', ...args, '--url', 'https://127.0.0.1:9', '--token', 'gh_unused']);
    return { code, err };
  } finally {
    write.mockRestore();
  }
}

describe('whole-number options', () => {
  afterEach(() => vi.restoreAllMocks());

  it('take whole numbers in range only', () => {
    const minutes = wholeNumberOption('the minutes', 1, 10);
    expect(minutes('10')).toBe(10);
    expect(wholeNumber('--length', ' 12 ', 12)).toBe(12);
    for (const bad of ['NaN', '', '1.5', '-1', '1e1', '0x5', '11', '0'])
      expect(() => minutes(bad), bad).toThrow(/whole number from 1 to 10/);
    expect(() => wholeNumber('--every', 'soon', 1)).toThrow('--every soon: must be a whole number of 1 or more.');
  });

  // Before, Number('x') went to the server as NaN (or 5000 as is), and its answer named an API field
  // (querystring.offset, body.minutes) that the user never typed; now the CLI refuses, naming the option.
  it.each([
    ['sessions list', '--offset', 'x'],
    ['sessions list', '--limit', '501'],
    ['devices list', '--offset', '-1'],
    ['devices list', '--limit', '2.5'],
    ['requests list', '--offset', 'first'],
    ['audit list', '--limit', '5000'],
    ['vnc app-1', '--minutes', '60'],
    ['vnc app-1', '--minutes', 'five'],
    ['rdp app-1', '--port', '70000'],
    ['agents token Shop/app-1', '--expires', '1441'],
  ])('%s %s %s is refused before any request, naming the option', async (command, option, value) => {
    const { code, err } = await run(...command.split(' '), option, value);
    expect(code).not.toBe(0);
    expect(err).toContain(`option '${option} `);
    expect(err).toContain(`argument '${value}' is invalid`);
    expect(err).not.toMatch(/querystring|body\.|ECONNREFUSED/);
  });
});
