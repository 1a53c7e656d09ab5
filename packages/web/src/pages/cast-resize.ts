/**
 * A terminal recording (asciicast v2) made ready for asciinema-player so that a window
 * resize plays back as the live terminal showed it.
 *
 * The live terminal is xterm.js. On a resize it keeps what a clear removed out of sight:
 * rows cleared by `ESC[2J`/`ESC[J` stay blank, and growing pulls lines back only from its
 * scrollback (which `ESC[3J` empties). asciinema-player's emulator (avt) does otherwise: it
 * keeps the rows that scrolled off or were cleared and brings them back when the window
 * grows, so playback showed rows the user had cleared. So the recording is first played
 * through an (unrendered) xterm.js, and after each `r` event an `o` event repaints the
 * player's screen with what xterm.js shows at that moment (its screen serialized, both
 * buffers when an alternate-screen program is running). Output events are left as
 * recorded; a recording without `r` events is handed over as it is.
 */

/** One asciicast v2 event: seconds since the start, kind (`o`, `i`, `r`, `m`), data. */
export type CastEvent = [number, string, string];
/** The v2 header's fields that matter here (the rest pass through). */
export interface CastHeader {
  version: number;
  width: number;
  height: number;
  [field: string]: unknown;
}

/** The live terminal's scrollback (pages/Terminal.tsx): growing pulls lines back from it. */
export const LIVE_SCROLLBACK = 5000;

/** Splits an asciicast v2 file into its header and events (lines that are not events are skipped, as the player does). */
export function parseCast(text: string): { header: CastHeader; events: CastEvent[] } {
  const [first = '', ...rest] = text.split('\n');
  const header = JSON.parse(first) as CastHeader;
  const events = rest.filter((line) => line.startsWith('[')).map((line) => JSON.parse(line) as CastEvent);
  return { header, events };
}

/** A `r` event's `COLSxROWS`, or null when it is not one. */
function sizeOf(data: string): { cols: number; rows: number } | null {
  const m = /^(\d+)x(\d+)$/.exec(data);
  return m ? { cols: Number(m[1]), rows: Number(m[2]) } : null;
}

/**
 * The recording as asciinema-player's `data` (`[header, ...events]`), with the screen
 * repainted after each resize as xterm.js has it. xterm.js and its serializer are loaded
 * only for a recording that has a resize.
 */
export async function castForPlayback(text: string): Promise<[CastHeader, ...CastEvent[]]> {
  const { header, events } = parseCast(text);
  if (header.version !== 2 || !events.some(([, kind]) => kind === 'r')) return [header, ...events];
  const [{ Terminal }, { SerializeAddon }] = await Promise.all([import('@xterm/xterm'), import('@xterm/addon-serialize')]);
  const term = new Terminal({ cols: header.width || 80, rows: header.height || 24, scrollback: LIVE_SCROLLBACK, allowProposedApi: true });
  const serializer = new SerializeAddon();
  term.loadAddon(serializer);
  const out: CastEvent[] = [];
  try {
    for (const event of events) {
      out.push(event);
      const [time, kind, data] = event;
      if (kind === 'o') term.write(data);
      if (kind !== 'r') continue;
      const size = sizeOf(data);
      if (!size) continue;
      // xterm.js parses in batches: the screen is read once all output before the resize is in.
      await new Promise<void>((resolve) => term.write('', resolve));
      term.resize(size.cols, size.rows);
      // Back on the normal screen (the serialized form re-enters the alternate one itself),
      // attributes reset, the whole screen cleared, then xterm.js's screen drawn.
      const leaveAlternate = term.buffer.active.type === 'alternate' ? '\x1b[?1049l' : '';
      out.push([time, 'o', `${leaveAlternate}\x1b[0m\x1b[H\x1b[2J${serializer.serialize({ scrollback: 0 })}`]);
    }
  } finally {
    term.dispose();
  }
  return [header, ...out];
}
