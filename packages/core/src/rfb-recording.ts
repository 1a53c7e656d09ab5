/**
 * The recording of a VNC or RDP (browser) session: what the user saw, as the RFB stream the
 * target sent after the handshake, in the one pixel format and set of encodings the proxy
 * lets every user side negotiate, so the console's player (noVNC) can always replay it.
 *
 * File layout (`<date>/<session id>.rfb`, beside the asciicast recordings):
 *   1. the header: one line of JSON (`RfbRecordingHeader`), ending in `\n`;
 *   2. frames, each: 4 bytes big-endian milliseconds since `startedAt`, 4 bytes big-endian
 *      length, then that many bytes of server→client RFB messages (after ServerInit).
 * A file cut short by a crash ends at the last whole frame (`decodeRfbFrames` ignores a
 * partial tail). Shared by the gateway's writer and the console's player: no I/O here.
 */

export const RFB_RECORDING_FORMAT = 'gatehouse-rfb';
export const RFB_RECORDING_VERSION = 1;
export const RFB_RECORDING_MEDIA_TYPE = 'application/vnd.gatehouse.rfb';

export interface RfbRecordingHeader {
  format: typeof RFB_RECORDING_FORMAT;
  version: typeof RFB_RECORDING_VERSION;
  /** The framebuffer at the start (a DesktopSize update may change it later). */
  width: number;
  height: number;
  /** The desktop name the player's synthetic ServerInit carries. */
  name: string;
  /** The 16-byte RFB PIXEL_FORMAT of every frame, hex (always `CANONICAL_PIXEL_FORMAT`). */
  pixelFormat: string;
  startedAt: string;
  /** `vnc` or `rdp` (an RDP session rendered server-side and recorded as RFB). */
  protocol: 'vnc' | 'rdp';
}

/**
 * 32 bits per pixel, depth 24, little-endian, true colour, max 255 each, red shift 0,
 * green 8, blue 16 (bytes R, G, B, unused): what noVNC asks for (its decoders write the
 * bytes as they come into an RGBA canvas, whatever the ServerInit said, so the player's
 * recording must be in this format), and what the proxy asks every target for.
 */
export const CANONICAL_PIXEL_FORMAT = Uint8Array.of(32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0);

/**
 * The encodings the proxy lets through to the target (the intersection with what the user
 * side asked for, in the user's order), all of which noVNC decodes: Raw, CopyRect, RRE,
 * Hextile, Tight, ZRLE, and the pseudo-encodings DesktopSize, LastRect, Cursor,
 * ExtendedDesktopSize, and Tight's quality/compression levels (-32…-23, -256…-247).
 */
export const PLAYABLE_ENCODINGS: ReadonlySet<number> = new Set([
  0,
  1,
  2,
  5,
  7,
  16,
  -223,
  -224,
  -239,
  -308,
  ...Array.from({ length: 10 }, (_, i) => -32 + i),
  ...Array.from({ length: 10 }, (_, i) => -256 + i),
]);

export interface RfbFrame {
  /** Milliseconds since the recording started. */
  at: number;
  data: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeRfbHeader(header: RfbRecordingHeader): Uint8Array {
  return encoder.encode(`${JSON.stringify(header)}\n`);
}

export function encodeRfbFrame(at: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.max(0, Math.min(0xffffffff, Math.round(at))));
  view.setUint32(4, data.length);
  out.set(data, 8);
  return out;
}

/** Thrown for a file that is not an RFB recording (the message says what is wrong). */
export class RfbRecordingError extends Error {
  override name = 'RfbRecordingError';
}

/** Reads a whole recording: its header and every whole frame. */
export function decodeRfbRecording(bytes: Uint8Array): { header: RfbRecordingHeader; frames: RfbFrame[] } {
  const end = bytes.indexOf(0x0a);
  if (end < 0 || end > 64 * 1024) throw new RfbRecordingError('The recording has no header line.');
  let header: RfbRecordingHeader;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(0, end))) as RfbRecordingHeader;
  } catch {
    throw new RfbRecordingError('The recording header is not JSON.');
  }
  if ((header.format as string) !== RFB_RECORDING_FORMAT) throw new RfbRecordingError(`The recording is not ${RFB_RECORDING_FORMAT}.`);
  if ((header.version as number) !== RFB_RECORDING_VERSION)
    throw new RfbRecordingError(
      `Recording version ${String(header.version)} is not supported (this player reads ${RFB_RECORDING_VERSION}).`,
    );
  return { header, frames: decodeRfbFrames(bytes.subarray(end + 1)) };
}

/** The whole frames in `bytes`; a partial frame at the end (a crash while writing) is left out. */
export function decodeRfbFrames(bytes: Uint8Array): RfbFrame[] {
  const frames: RfbFrame[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  while (offset + 8 <= bytes.length) {
    const at = view.getUint32(offset);
    const length = view.getUint32(offset + 4);
    if (offset + 8 + length > bytes.length) break;
    frames.push({ at, data: bytes.subarray(offset + 8, offset + 8 + length) });
    offset += 8 + length;
  }
  return frames;
}

/**
 * The handshake a player feeds its RFB client before the frames: RFB 3.8, security type
 * None, SecurityResult OK, and a ServerInit with the header's size, pixel format and name.
 * The client's own messages to this fake server are ignored.
 */
export function syntheticHandshake(header: RfbRecordingHeader): Uint8Array[] {
  const name = encoder.encode(header.name);
  const init = new Uint8Array(24 + name.length);
  const view = new DataView(init.buffer);
  view.setUint16(0, header.width);
  view.setUint16(2, header.height);
  init.set(hexBytes(header.pixelFormat), 4);
  view.setUint32(20, name.length);
  init.set(name, 24);
  return [encoder.encode('RFB 003.008\n'), Uint8Array.of(1, 1), Uint8Array.of(0, 0, 0, 0), init];
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16) || 0;
  return out;
}

/** Default ports of the desktop protocols. */
export const DESKTOP_DEFAULT_PORTS = { vnc: 5900, rdp: 3389 } as const;
export type DesktopProtocol = keyof typeof DESKTOP_DEFAULT_PORTS;

/**
 * The port of `protocol` on a device, from its URL/Port field: `vnc://host:5901` (or
 * `rdp://…`) names it; a bare `5901` or `host:5901` counts only for a device whose one
 * protocol is this one; otherwise the protocol's default (5900, 3389).
 */
export function desktopPortOf(device: { urlPort: string | null; protocols: readonly string[] }, protocol: DesktopProtocol): number {
  const fallback = DESKTOP_DEFAULT_PORTS[protocol];
  const text = device.urlPort?.trim() ?? '';
  const schemed = new RegExp(`^${protocol}://[^/]*:(\\d{1,5})/?$`, 'i').exec(text);
  const bare = /^(?:[^:/]+:)?(\d{1,5})$/.exec(text);
  const only = device.protocols.length === 1 && device.protocols[0] === protocol;
  const raw = schemed?.[1] ?? (only ? bare?.[1] : undefined);
  const port = raw === undefined ? fallback : Number(raw);
  return port >= 1 && port <= 65535 ? port : fallback;
}
