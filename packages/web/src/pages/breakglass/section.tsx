import type { ApiError } from '../../api.js';
import { Field } from '../../ui.js';
import type { Form } from './form.js';

/** What every section of the settings form reads and writes: the form lives in the page. */
export interface SectionProps {
  form: Form;
  set: <K extends keyof Form>(key: K) => (value: Form[K]) => void;
  error: ApiError | null;
  readOnly: boolean;
}

/** A text field of the form, bound to its key, showing the API's message for it. */
export function fieldOf({ form, set, error, readOnly }: SectionProps) {
  return (label: string, key: Exclude<keyof Form, 'provider' | 'pathStyle'>, extra: Partial<Parameters<typeof Field>[0]> = {}) => (
    <Field label={label} name={key} value={form[key]} onChange={set(key)} error={error} disabled={readOnly} {...extra} />
  );
}

/** The API shows a secret that is set as a fixed mask (********); sent back, it keeps the stored value. */
export const secretHint = 'Shown as a fixed mask when set; type a new one to replace it.';

/** The API's message for a field drawn without <Field>. */
export function FieldError({ error, name, label }: { error: ApiError | null; name: string; label: string }) {
  const message = error?.field(name);
  return message ? <p className="field-error" role="alert">{`${label} ${message}`}</p> : null;
}
