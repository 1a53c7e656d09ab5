import RFB from '@novnc/novnc';
import { decodeRfbRecording, syntheticHandshake } from '@gatehouse/core/rfb-recording';
import { useEffect, useRef, useState } from 'react';
import { API, apiBytes } from '../../api.js';
import { ErrorNote } from '../../ui.js';
import { PushChannel } from './channel.js';
import { Playback, type PlaybackState } from './playback.js';

function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

const SPEEDS = [0.5, 1, 2, 4];

/** The seek bar's step in ms: a recording under 10 s gets positions all along it. */
function seekStep(duration: number): number {
  return duration < 10_000 ? 10 : 100;
}

/**
 * A VNC or RDP recording (RFB frames, `path` under the API) replayed by noVNC in the page:
 * play/pause, speed and a seek bar, starting paused on the first picture. The recording is
 * fetched once; seeking backwards replays it from the start up to the time, in chunks the
 * decoder can take (see playback.ts).
 */
export function DesktopPlayer({ path }: { path: string }) {
  const screen = useRef<HTMLDivElement>(null);
  const playback = useRef<Playback | null>(null);
  const [state, setState] = useState<PlaybackState | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const element = screen.current;
    if (!element) return;
    let cancelled = false;
    let rfb: RFB | null = null;
    void apiBytes(path)
      .then((bytes) => {
        const { header, frames } = decodeRfbRecording(bytes);
        if (cancelled) return;
        let channel: PushChannel | null = null;
        const sink = {
          reset: () => {
            rfb?.disconnect();
            element.replaceChildren();
            channel = new PushChannel();
            rfb = new RFB(element, channel, { shared: true });
            rfb.viewOnly = true;
            rfb.scaleViewport = true;
            rfb.background = '#20242b';
            channel.open();
            for (const part of syntheticHandshake(header)) channel.push(part);
          },
          feed: (data: readonly Uint8Array[]) => {
            for (const part of data) channel?.push(part);
          },
        };
        playback.current = new Playback(frames, sink, { onChange: setState });
        setState(playback.current.state());
      })
      .catch((e: unknown) => !cancelled && setError(e));
    return () => {
      cancelled = true;
      playback.current?.dispose();
      playback.current = null;
      rfb?.disconnect();
      element.replaceChildren();
    };
  }, [path]);

  // The seek bar moves while playing (frames may be seconds apart).
  useEffect(() => {
    if (!state?.playing) return;
    const t = setInterval(() => playback.current && setState(playback.current.state()), 250);
    return () => clearInterval(t);
  }, [state?.playing]);

  const step = seekStep(state?.duration ?? 0);
  return (
    <div className="player">
      <div className="player-speed" role="group" aria-label="Playback">
        <button type="button" disabled={!state} onClick={() => (state?.playing ? playback.current?.pause() : playback.current?.play())}>
          {state?.playing ? 'Pause' : 'Play'}
        </button>
        {SPEEDS.map((s) => (
          <button
            key={s}
            type="button"
            aria-pressed={state?.speed === s}
            className={state?.speed === s ? 'active' : ''}
            disabled={!state}
            onClick={() => playback.current?.setSpeed(s)}
          >
            {s}×
          </button>
        ))}
        <input
          type="range"
          className="player-seek"
          aria-label="Position"
          min={0}
          // Up to a whole step past the end, so the end is a position too (seek stops at the end).
          max={state ? Math.ceil(state.duration / step) * step : 0}
          step={step}
          value={state ? Math.round(state.position) : 0}
          disabled={!state}
          onChange={(e) => playback.current?.seek(Number(e.target.value))}
        />
        <span className="mono muted" data-testid="player-time">
          {state ? `${clock(state.position)} / ${clock(state.duration)}` : '…'}
        </span>
        <a href={`${API}${path}`} download>
          Download (.rfb)
        </a>
      </div>
      <div ref={screen} className="player-screen desktop-screen" data-testid="player" />
      {error ? <ErrorNote error={error} /> : null}
    </div>
  );
}
