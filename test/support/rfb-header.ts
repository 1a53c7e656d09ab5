import { CANONICAL_PIXEL_FORMAT, RFB_RECORDING_FORMAT, RFB_RECORDING_VERSION, type RfbRecordingHeader } from '@gatehouse/core';

/** The header of a VNC session's recording for tests, started now; `overrides` changes any field. */
export function testRfbHeader(overrides: Partial<RfbRecordingHeader> = {}): RfbRecordingHeader {
  return {
    format: RFB_RECORDING_FORMAT,
    version: RFB_RECORDING_VERSION,
    width: 64,
    height: 48,
    name: 'Lab/desk:vnc',
    pixelFormat: Buffer.from(CANONICAL_PIXEL_FORMAT).toString('hex'),
    startedAt: new Date().toISOString(),
    protocol: 'vnc',
    ...overrides,
  };
}
