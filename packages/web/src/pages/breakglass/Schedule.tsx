import { fieldOf, type SectionProps } from './section.js';

const TIME_ZONES: string[] = (() => {
  try {
    return (Intl as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
})();

/** When the daily run starts: the execute time and its time zone. */
export function Schedule(props: SectionProps) {
  const field = fieldOf(props);
  return (
    <div className="form-grid even">
      {field('Execute time', 'executeTime', { hint: 'Daily, as HH:mm.', required: true, placeholder: '03:00' })}
      {field('Time zone', 'timeZone', { list: 'time-zones', hint: 'The execute time is in this zone.' })}
      <datalist id="time-zones">
        {TIME_ZONES.map((z) => (
          <option key={z} value={z} />
        ))}
      </datalist>
    </div>
  );
}
