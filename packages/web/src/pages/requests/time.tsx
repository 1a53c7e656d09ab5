/** The viewer's zone, as the browser knows it (Europe/Berlin). */
export const viewerZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone;

/** `2026-12-06 10:00 UTC`: what a tooltip shows beside a local time. */
export const utcText = (iso: string): string => `${new Date(iso).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** A time in the viewer's zone, with the UTC time in its title. */
export function LocalTime({ at }: { at: string }) {
  return (
    <time dateTime={at} title={utcText(at)}>
      {new Date(at).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' })}
    </time>
  );
}

/** A `<input type="datetime-local">` value (the viewer's zone) as UTC ISO; undefined when empty or not a time. */
export function localInputToIso(value: string): string | undefined {
  if (value === '') return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** Now plus `minutes`, as a `datetime-local` value in the viewer's zone. */
export function localInputIn(minutes: number): string {
  const d = new Date(Date.now() + minutes * 60_000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
