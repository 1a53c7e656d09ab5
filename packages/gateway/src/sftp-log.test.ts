import { describe, expect, it } from 'vitest';
import { LegacyScpLog, SftpOperationLog, type FileOperation } from './sftp-log.js';

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u32(b.length), b]);
};
const packet = (type: number, id: number, ...fields: Buffer[]) => {
  const body = Buffer.concat([Buffer.from([type]), u32(id), ...fields]);
  return Buffer.concat([u32(body.length), body]);
};
const u64 = () => Buffer.alloc(8);
const attrs = () => u32(0);
const ok = (id: number) => packet(101, id, u32(0), str(''), str(''));

/** Feeds `bytes` in pieces of `size` (1: every byte boundary). */
function feed(push: (b: Buffer) => void, bytes: Buffer, size: number) {
  for (let i = 0; i < bytes.length; i += size) push(bytes.subarray(i, i + size));
}

describe('SftpOperationLog', () => {
  const data = Buffer.alloc(70_000, 7);
  const client = Buffer.concat([
    packet(1, 3), // INIT (version 3 where the id would be)
    packet(3, 1, str('/tmp/up.bin'), u32(0x02 | 0x08 | 0x10), attrs()),
    packet(6, 2, str('h1'), u64(), str(data)),
    packet(4, 3, str('h1')),
    packet(3, 4, str('/etc/shadow'), u32(0x01), attrs()),
    packet(18, 5, str('/tmp/a\nb'), str('/tmp/c')),
    packet(13, 6, str('/tmp/gone')),
    packet(3, 7, str('/tmp/down.bin'), u32(0x01), attrs()),
    packet(5, 8, str('h2'), u64(), u32(32_768)),
    packet(200, 9, str('posix-rename@openssh.com'), str('/tmp/missing'), str('/tmp/d')),
    packet(200, 10, str('statvfs@openssh.com'), str('/tmp')),
  ]);
  const server = Buffer.concat([
    packet(2, 3),
    packet(102, 1, str('h1')),
    ok(2),
    ok(3),
    packet(101, 4, u32(3), str('Permission denied'), str('')),
    ok(5),
    packet(101, 6, u32(2), str('No such file'), str('')),
    packet(102, 7, str('h2')),
    packet(103, 8, str(Buffer.alloc(1000))),
    packet(101, 9, u32(2), str('No such file'), str('')),
    packet(201, 10, u64()),
  ]);

  for (const size of [1, 7, 4096, client.length]) {
    it(`logs path, size, direction and result with packets split every ${size} bytes`, () => {
      const ops: FileOperation[] = [];
      const log = new SftpOperationLog((op) => ops.push(op));
      // Each request before its answer, as on the wire.
      feed((b) => log.fromClient(b), client, size);
      feed((b) => log.fromServer(b), server, size);
      log.finish('the channel closed');
      expect(ops.map(({ op, path, target, bytes, result, error }) => ({ op, path, target, bytes, result, error }))).toEqual([
        { op: 'upload', path: '/tmp/up.bin', target: null, bytes: data.length, result: 'success', error: null },
        { op: 'download', path: '/etc/shadow', target: null, bytes: 0, result: 'failure', error: 'Permission denied' },
        { op: 'rename', path: '/tmp/a\\x0ab', target: '/tmp/c', bytes: 0, result: 'success', error: null },
        { op: 'remove', path: '/tmp/gone', target: null, bytes: 0, result: 'failure', error: 'No such file' },
        { op: 'rename', path: '/tmp/missing', target: '/tmp/d', bytes: 0, result: 'failure', error: 'No such file' },
        { op: 'download', path: '/tmp/down.bin', target: null, bytes: 1000, result: 'failure', error: 'the channel closed' },
      ]);
    });
  }

  it('keeps going, silently, on garbage: the proxied bytes are never its business', () => {
    const ops: FileOperation[] = [];
    const log = new SftpOperationLog((op) => ops.push(op));
    log.fromClient(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    log.fromServer(Buffer.from('not sftp at all'));
    log.finish('end');
    expect(ops).toEqual([]);
  });

  it('reads the legacy scp exec commands, counting the bytes of the files, not the protocol around them', () => {
    const up = LegacyScpLog.of('scp -t /tmp/x');
    // The sink's acknowledgements (from the device, for an upload) are not counted.
    up?.fromServer(Buffer.from([0, 0, 0]));
    for (const piece of ['T1 0 1 0\n', 'C0644 10 x\n', '01234', '56789', '\0', 'C0600 0 empty\n', '\0', 'C0644 3 y\nabc', '\0'])
      up?.fromClient(Buffer.from(piece, 'latin1'));
    expect(up?.operation(0)).toMatchObject({ op: 'upload', path: '/tmp/x', bytes: 13, result: 'success', error: null });
    const down = LegacyScpLog.of('scp -v -f -- data.csv');
    down?.fromClient(Buffer.from([0, 0]));
    down?.fromServer(Buffer.from('C0644 900 data.csv\n'));
    down?.fromServer(Buffer.alloc(900, 0x0a));
    expect(down?.operation(1)).toMatchObject({ op: 'download', path: 'data.csv', bytes: 900, result: 'failure' });
    expect(LegacyScpLog.of('ls -la')).toBeUndefined();
  });
});
