import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ExecOutputWatch, summaryMarker } from './exec-output.js';

describe('ExecOutputWatch', () => {
  it('records text, colours and UTF-8 split across chunks', () => {
    const watch = new ExecOutputWatch('stdout');
    const text = Buffer.from('\u001b[31mréd\u001b[0m\tdone\r\n');
    const split = text.indexOf(0xc3) + 1;
    expect(watch.admit(text.subarray(0, split))).toBe(true);
    expect(watch.admit(text.subarray(split))).toBe(true);
    expect(watch.binary).toBe(false);
  });

  it('stops recording at the first bytes that are not text, and hashes the whole stream', () => {
    const watch = new ExecOutputWatch('stdout');
    const head = Buffer.from('PK archive follows\n');
    const body = Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0xff]);
    expect(watch.admit(head)).toBe(true);
    expect(watch.admit(body)).toBe(false);
    // Text after a transfer started is still part of the transfer.
    expect(watch.admit(Buffer.from('tail\n'))).toBe(false);
    expect(watch.startMarker()).toContain(`from byte ${head.length} on`);
    const all = Buffer.concat([head, body, Buffer.from('tail\n')]);
    const summary = watch.summary();
    expect(summary).toEqual({
      stream: 'stdout',
      bytes: all.length,
      omittedBytes: all.length - head.length,
      sha256: createHash('sha256').update(all).digest('hex'),
    });
    expect(summaryMarker(summary)).toBe(
      `Gatehouse: stdout not recorded: ${all.length - head.length} of ${all.length} bytes; SHA-256 of all stdout: ${summary.sha256}`,
    );
  });

  it('takes invalid UTF-8 and a legacy scp stream for transfers', () => {
    expect(new ExecOutputWatch('stdout').admit(Buffer.from([0x61, 0xc3, 0x28]))).toBe(false);
    const scp = new ExecOutputWatch('stdout', true);
    expect(scp.binary).toBe(true);
    expect(scp.admit(Buffer.from('C0644 3 a.txt\n'))).toBe(false);
  });
});
