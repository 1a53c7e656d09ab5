import { useEffect, useState } from 'react';
import type { RotationPolicyAnswer, RotationPolicyPut, RotationPolicyView } from '@gatehouse/api';
import { PASSWORD_CLASSES } from '@gatehouse/core/runbook-terms';
import { api, ApiError } from '../../api.js';
import { ErrorNote, Field, useSubmit } from '../../ui.js';
import { LocalTime } from '../requests/time.js';

type PasswordClass = RotationPolicyView['passwordClasses'][number];

/** The policy in one line: "every 90 days · after each session · a password of 24 characters … · as root". */
function summaryOf(p: RotationPolicyView): string {
  const when = [p.everyDays !== null ? `every ${p.everyDays} days` : null, p.afterSession ? 'after each session' : null].filter(Boolean);
  const kind = CREDENTIAL_CHOICES.find((c) => c.value === p.credential)?.label ?? p.credential;
  return (
    `Rotated ${when.length > 0 ? when.join(' and ') : 'only by hand'} · new credential: ${kind}` +
    `${p.credential === 'key' ? '' : ` (passwords of ${p.passwordLength} characters: ${p.passwordClasses.join(', ')})`} · as ${p.privilegedAccount}.`
  );
}

/** A policy not set yet starts from these (the engine's default password policy). */
const FRESH: RotationPolicyView = {
  everyDays: null,
  afterSession: false,
  credential: 'same',
  passwordLength: 24,
  passwordClasses: [...PASSWORD_CLASSES],
  privilegedAccount: 'root',
};

const CREDENTIAL_CHOICES: { value: RotationPolicyView['credential']; label: string }[] = [
  { value: 'same', label: 'the same kind it has now' },
  { value: 'password', label: 'a password' },
  { value: 'key', label: 'an SSH key' },
];

/**
 * Scheduled rotation of a project's or a device's account credentials (administrators):
 * every N days, after each session that used the account, or both. A device's policy
 * applies instead of its project's.
 */
export function RotationPolicy({
  scope,
  id,
  name,
  onClose,
}: {
  scope: 'project' | 'device';
  id: string;
  name: string;
  onClose?: () => void;
}) {
  const route = `/${scope === 'project' ? 'projects' : 'devices'}/${id}/rotation-policy`;
  const [current, setCurrent] = useState<RotationPolicyAnswer | null | undefined>(undefined);
  const [form, setForm] = useState<RotationPolicyView>(FRESH);
  const [everyDays, setEveryDays] = useState('');
  const [length, setLength] = useState(String(FRESH.passwordLength));
  const [loadError, setLoadError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  // A project's form is opened on purpose; a device page shows the policy in a line first.
  const [editing, setEditing] = useState(scope === 'project');
  const close = onClose ?? (() => setEditing(false));

  const show = (answer: RotationPolicyAnswer | null) => {
    setCurrent(answer);
    const policy = answer ?? FRESH;
    setForm(policy);
    setEveryDays(policy.everyDays === null ? '' : String(policy.everyDays));
    setLength(String(policy.passwordLength));
  };

  const [loads, setLoads] = useState(0);
  useEffect(() => {
    api<RotationPolicyAnswer>('GET', route).then(show, (e: unknown) =>
      e instanceof ApiError && e.status === 404 ? show(null) : setLoadError(e),
    );
  }, [route, loads]);
  /** The policy is this device's (or project's) own, not one it inherits. */
  const own = current?.scope === scope;

  const { busy, error, submit } = useSubmit(async () => {
    const body: RotationPolicyPut = {
      everyDays: everyDays.trim() === '' ? null : Number(everyDays),
      afterSession: form.afterSession,
      credential: form.credential,
      passwordLength: Number(length),
      passwordClasses: form.passwordClasses,
      privilegedAccount: form.privilegedAccount.trim(),
    };
    show(await api<RotationPolicyAnswer>('PUT', route, body));
    setSaved('Saved.');
    if (!onClose) setEditing(false);
  });

  const remove = () => {
    if (!window.confirm(`Stop rotating the credentials of ${name} on a schedule?`)) return;
    api('DELETE', route).then(
      () => {
        setSaved(scope === 'device' ? "Removed: its project's policy applies, if any." : 'Removed: no scheduled rotation.');
        setLoads((n) => n + 1);
        if (!onClose) setEditing(false);
      },
      (e: unknown) => setLoadError(e),
    );
  };

  const toggleClass = (c: PasswordClass) =>
    setForm((f) => ({
      ...f,
      passwordClasses: f.passwordClasses.includes(c) ? f.passwordClasses.filter((x) => x !== c) : [...f.passwordClasses, c],
    }));

  if (current === undefined) return loadError ? <ErrorNote error={loadError} /> : <p className="muted">…</p>;
  if (!editing) {
    return (
      <section className="rotation-policy" aria-labelledby={`rotation-policy-${id}`}>
        <h2 id={`rotation-policy-${id}`}>Credential rotation</h2>
        <p>
          {current ? `${own ? '' : 'From its project: '}${summaryOf(current)}` : 'Not set: credentials are rotated only by hand.'}{' '}
          <button type="button" className="link" onClick={() => setEditing(true)}>
            {own ? 'Change' : current ? 'Set one for this device' : 'Set a rotation policy'}
          </button>
        </p>
        {saved ? (
          <p className="saved" role="status">
            {saved}
          </p>
        ) : null}
        <ErrorNote error={loadError} />
      </section>
    );
  }
  return (
    <form className="card form-grid" onSubmit={submit} aria-label={`Credential rotation of ${name}`}>
      <h2>Credential rotation of {name}</h2>
      <p className="hint wide">
        {own ? (
          <>
            Set by {current.setBy.username}, last changed <LocalTime at={current.updatedAt} />.{' '}
          </>
        ) : current ? (
          "Its project's policy applies now; saving sets this device's own, which applies instead. "
        ) : (
          'Not set: credentials are rotated only by hand. '
        )}
        Rotations run through the gateway as the administrator who saved the policy.
      </p>
      <ErrorNote error={loadError} />
      <Field
        label="Rotate every (days)"
        name="everyDays"
        type="number"
        inputMode="numeric"
        value={everyDays}
        onChange={setEveryDays}
        error={error}
        hint="Empty: no schedule by age."
      />
      <label className="check field">
        <input type="checkbox" checked={form.afterSession} onChange={(e) => setForm((f) => ({ ...f, afterSession: e.target.checked }))} />{' '}
        After each session that used the account
      </label>
      <div className="field">
        <label htmlFor={`rotation-credential-${id}`}>New credential</label>
        <select
          id={`rotation-credential-${id}`}
          value={form.credential}
          onChange={(e) => setForm((f) => ({ ...f, credential: e.target.value as RotationPolicyView['credential'] }))}
        >
          {CREDENTIAL_CHOICES.map((c) => (
            <option key={c.value} value={c.value}>
              {c.label}
            </option>
          ))}
        </select>
      </div>
      <Field
        label="Password length"
        name="passwordLength"
        type="number"
        inputMode="numeric"
        value={length}
        onChange={setLength}
        error={error}
        hint="12 to 128 characters."
      />
      <fieldset className={error?.field('passwordClasses') ? 'field invalid' : 'field'}>
        <legend>Password characters</legend>
        <div className="checks">
          {PASSWORD_CLASSES.map((c) => (
            <label key={c} className="check">
              <input type="checkbox" checked={form.passwordClasses.includes(c)} onChange={() => toggleClass(c)} /> {c}
            </label>
          ))}
        </div>
        {error?.field('passwordClasses') ? <p className="field-error">Password characters {error.field('passwordClasses')}</p> : null}
      </fieldset>
      <Field
        label="Privileged account"
        name="privilegedAccount"
        value={form.privilegedAccount}
        onChange={(v) => setForm((f) => ({ ...f, privilegedAccount: v }))}
        error={error}
        hint="The vaulted account the rotation runs as: root, or one allowed passwordless sudo."
      />
      <ErrorNote error={error?.issues.length ? null : error} />
      {saved ? (
        <p className="saved wide" role="status">
          {saved}
        </p>
      ) : null}
      <div className="actions wide">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save rotation policy'}
        </button>
        {own ? (
          <button type="button" className="danger" onClick={remove}>
            Remove policy
          </button>
        ) : null}
        <button type="button" onClick={close}>
          Close
        </button>
      </div>
    </form>
  );
}
