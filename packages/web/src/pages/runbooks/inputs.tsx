import type { RunbookRunCreate, RunbookSummary } from '@gatehouse/api';

type Input = RunbookSummary['inputs'][number];
/** The form's value of each input: text as typed, a checkbox as a boolean. */
export type InputValues = Record<string, string | boolean>;

/** The engine's variables a default may name, as people say them. */
const VARIABLES: Record<string, string> = {
  'device.sshPort': "the device's SSH port",
  'device.name': "the device's name",
  account: 'the privileged account',
};

/** A default as shown beside its input: `{{device.sshPort}}` reads "the device's SSH port". */
export function describeDefault(value: Input['default']): string {
  if (value === null) return '';
  return String(value).replace(/\{\{\s*([\w.]+)\s*\}\}/g, (whole, name: string) => VARIABLES[name] ?? whole);
}

/** The starting values: a checkbox as its default, everything else empty (the default applies). */
export function initialValues(inputs: Input[], preset: Record<string, string> = {}): InputValues {
  const values: InputValues = {};
  for (const input of inputs) values[input.name] = input.type === 'boolean' ? input.default === true : (preset[input.name] ?? '');
  return values;
}

/** The request's inputs: what was typed (integers as numbers) and every checkbox; an empty field leaves the default. */
export function requestInputs(inputs: Input[], values: InputValues): NonNullable<RunbookRunCreate['inputs']> {
  const out: NonNullable<RunbookRunCreate['inputs']> = {};
  for (const input of inputs) {
    const value = values[input.name];
    if (typeof value === 'boolean') out[input.name] = value;
    else if (value !== undefined && value.trim() !== '') out[input.name] = input.type === 'integer' ? Number(value) : value.trim();
  }
  return out;
}

/** One input of a runbook, drawn by its type: a number, a checkbox, a choice of its values, or text. */
export function InputField({
  input,
  value,
  onChange,
  error,
}: {
  input: Input;
  value: string | boolean;
  onChange: (value: string | boolean) => void;
  error: string | undefined;
}) {
  const id = `runbook-input-${input.name}`;
  const fallback = describeDefault(input.default);
  const hint = [input.description?.replace(/([^.!?])$/, '$1.'), fallback ? `Default: ${fallback}.` : input.required ? 'Required.' : null]
    .filter(Boolean)
    .join(' ');
  const described = error ? `${id}-error` : hint ? `${id}-hint` : undefined;
  const note = error ? (
    <p className="field-error" id={`${id}-error`} role="alert">
      {input.name} {error}
    </p>
  ) : hint ? (
    <p className="hint" id={`${id}-hint`}>
      {hint}
    </p>
  ) : null;

  if (input.type === 'boolean') {
    return (
      <div className={error ? 'field invalid' : 'field'}>
        <label className="check" htmlFor={id}>
          <input
            id={id}
            type="checkbox"
            checked={value === true}
            onChange={(e) => onChange(e.target.checked)}
            aria-describedby={described}
          />{' '}
          {input.name}
        </label>
        {note}
      </div>
    );
  }
  return (
    <div className={error ? 'field invalid' : 'field'}>
      <label htmlFor={id}>{input.name}</label>
      {input.type === 'enum' ? (
        <select
          id={id}
          value={String(value)}
          required={input.required && input.default === null}
          onChange={(e) => onChange(e.target.value)}
          aria-describedby={described}
          aria-invalid={error ? true : undefined}
        >
          <option value="">{fallback ? `Default (${fallback})` : input.required ? 'Choose…' : 'Default'}</option>
          {(input.values ?? []).map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
        </select>
      ) : (
        <input
          id={id}
          type={input.type === 'integer' ? 'number' : 'text'}
          inputMode={input.type === 'integer' ? 'numeric' : undefined}
          step={input.type === 'integer' ? 1 : undefined}
          value={String(value)}
          placeholder={fallback}
          required={input.required && input.default === null}
          spellCheck={false}
          autoComplete="off"
          onChange={(e) => onChange(e.target.value)}
          aria-describedby={described}
          aria-invalid={error ? true : undefined}
        />
      )}
      {note}
    </div>
  );
}
