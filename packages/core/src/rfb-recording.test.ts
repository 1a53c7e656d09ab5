import { describe, expect, it } from 'vitest';
import {
  decodeRfbRecording,
  desktopPortOf,
  encodeRfbFrame,
  encodeRfbHeader,
  RfbRecordingError,
  syntheticHandshake,
  type RfbRecordingHeader,
} from './rfb-recording.js';

const header: RfbRecordingHeader = {
  format: 'gatehouse-rfb',
  version: 1,
  width: 640,
  height: 480,
  name: 'desk-1',
  pixelFormat: '2018000100ff00ff00ff100800000000',
  startedAt: '2026-12-06T00:00:00.000Z',
  protocol: 'vnc',
};

const joined = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

describe('RFB recordings', () => {
  it('reads back the header and every whole frame, leaving out a frame cut short by a crash', () => {
    const file = joined(encodeRfbHeader(header), encodeRfbFrame(0, Uint8Array.of(1, 2)), encodeRfbFrame(250, Uint8Array.of(3)));
    const cut = joined(file, encodeRfbFrame(900, Uint8Array.of(4, 5, 6)).subarray(0, 10));
    const { header: read, frames } = decodeRfbRecording(cut);
    expect(read).toEqual(header);
    expect(frames.map((f) => [f.at, [...f.data]])).toEqual([
      [0, [1, 2]],
      [250, [3]],
    ]);
  });

  it('names what is wrong with a file that is not one', () => {
    expect(() => decodeRfbRecording(new TextEncoder().encode('{"version":2}\n'))).toThrow(RfbRecordingError);
    expect(() => decodeRfbRecording(new TextEncoder().encode('{"format":"gatehouse-rfb","version":9}\n'))).toThrow(
      /version 9 is not supported/,
    );
  });

  it('starts a player with RFB 3.8, security None and a ServerInit of the recorded size and name', () => {
    const [version, types, result, init] = syntheticHandshake(header);
    expect(new TextDecoder().decode(version)).toBe('RFB 003.008\n');
    expect([...(types ?? [])]).toEqual([1, 1]);
    expect([...(result ?? [])]).toEqual([0, 0, 0, 0]);
    const view = new DataView((init as Uint8Array).buffer);
    expect([view.getUint16(0), view.getUint16(2), (init as Uint8Array)[4], view.getUint32(20)]).toEqual([640, 480, 32, 6]);
  });

  it('finds the port of a desktop protocol in the URL/Port field', () => {
    expect(desktopPortOf({ urlPort: null, protocols: ['vnc'] }, 'vnc')).toBe(5900);
    expect(desktopPortOf({ urlPort: '5901', protocols: ['vnc'] }, 'vnc')).toBe(5901);
    expect(desktopPortOf({ urlPort: '10.0.0.5:5902', protocols: ['vnc'] }, 'vnc')).toBe(5902);
    expect(desktopPortOf({ urlPort: '2222', protocols: ['ssh', 'vnc'] }, 'vnc')).toBe(5900);
    expect(desktopPortOf({ urlPort: 'vnc://desk:5905', protocols: ['ssh', 'vnc'] }, 'vnc')).toBe(5905);
    expect(desktopPortOf({ urlPort: 'RDP://desk:3390', protocols: ['rdp'] }, 'rdp')).toBe(3390);
    expect(desktopPortOf({ urlPort: '99999', protocols: ['rdp'] }, 'rdp')).toBe(3389);
  });
});
