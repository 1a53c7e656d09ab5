import { useEffect, useId, useState } from 'react';
import type { OidcSettings, OidcSettingsPut, Role, SsoGroupRole } from '@gatehouse/api';
import { api, type ApiError } from '../api.js';
import { ErrorNote, Field, FormEnd, PageHeader, useSubmit } from '../ui.js';

/** The form's text fields: an empty one is "not set" (null) where the API allows it. */
interface Form {
  enabled: boolean;
  displayName: string;
  issuerUrl: string;
  clientId: string;
  redirectUrl: string;
  scopes: string;
  groupClaim: string;
  groupRoles: SsoGroupRole[];
  requireLocalMfa: boolean;
  caPem: string;
}

const formOf = (s: OidcSettings): Form => ({
  enabled: s.enabled,
  displayName: s.displayName,
  issuerUrl: s.issuerUrl ?? '',
  clientId: s.clientId ?? '',
  redirectUrl: s.redirectUrl ?? '',
  scopes: s.scopes.join(' '),
  groupClaim: s.groupClaim,
  groupRoles: s.groupRoles,
  requireLocalMfa: s.requireLocalMfa,
  caPem: s.caPem ?? '',
});

const orNull = (v: string) => (v.trim() === '' ? null : v);

/** The PUT: every field as shown; the secret only when one was typed (absent keeps the stored one). */
const bodyOf = (f: Form, clientSecret: string): OidcSettingsPut => ({
  enabled: f.enabled,
  displayName: f.displayName,
  issuerUrl: orNull(f.issuerUrl),
  clientId: orNull(f.clientId),
  redirectUrl: orNull(f.redirectUrl),
  scopes: f.scopes.split(/[\s,]+/).filter((s) => s !== ''),
  groupClaim: f.groupClaim,
  groupRoles: f.groupRoles,
  requireLocalMfa: f.requireLocalMfa,
  caPem: orNull(f.caPem),
  ...(clientSecret === '' ? {} : { clientSecret }),
});

const ROLES: readonly Role[] = ['admin', 'operator', 'auditor'];

/**
 * System management → Single sign-on (administrators): the OIDC provider, its client (the
 * secret write-only: "stored", or a new one typed to replace it), which groups give which
 * role, and whether the local authenticator is still asked for. The API names each field
 * it refuses; the message shows under that field.
 */
export function SingleSignOn() {
  const [settings, setSettings] = useState<OidcSettings | null>(null);
  const [form, setForm] = useState<Form | null>(null);
  const [secret, setSecret] = useState('');
  const [replacing, setReplacing] = useState(false);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);

  useEffect(() => {
    api<OidcSettings>('GET', '/sso/oidc/settings').then((s) => {
      setSettings(s);
      setForm(formOf(s));
    }, setLoadError);
  }, []);

  const { busy, error, submit } = useSubmit(async () => {
    if (!form) return;
    setSaved(false);
    const s = await api<OidcSettings>('PUT', '/sso/oidc/settings', bodyOf(form, secret));
    setSettings(s);
    setForm(formOf(s));
    setSecret('');
    setReplacing(false);
    setSaved(true);
  });

  if (!settings || !form) {
    return (
      <section>
        <PageHeader title="Single sign-on" />
        {loadError ? <ErrorNote error={loadError} /> : <div className="placeholder" aria-busy="true" />}
      </section>
    );
  }
  const set =
    <K extends keyof Form>(key: K) =>
    (value: Form[K]) =>
      setForm({ ...form, [key]: value });
  const callback = `${location.origin}/api/v1/auth/oidc/callback`;

  return (
    <section aria-labelledby="sso-title">
      <PageHeader title="Single sign-on" />
      <p className="lead">
        People sign in through your OpenID Connect identity provider; the groups it sends give their role. Password sign-in stays for local
        users. docs/SSO.md shows how to register Gatehouse at Keycloak, Entra ID and Okta.
      </p>
      <form className="card form-grid" aria-label="Single sign-on settings" onSubmit={submit}>
        <label className="check field wide">
          <input type="checkbox" checked={form.enabled} onChange={(e) => set('enabled')(e.target.checked)} /> Offer “Sign in with{' '}
          {form.displayName || 'SSO'}” on the sign-in page
        </label>
        <Field label="Display name" name="displayName" value={form.displayName} onChange={set('displayName')} error={error} />
        <Field
          label="Issuer URL"
          name="issuerUrl"
          value={form.issuerUrl}
          onChange={set('issuerUrl')}
          error={error}
          placeholder="https://keycloak.example.com/realms/ops"
          hint="Its /.well-known/openid-configuration is read."
        />
        <Field label="Client ID" name="clientId" value={form.clientId} onChange={set('clientId')} error={error} />
        <ClientSecret
          stored={settings.clientSecretSet}
          replacing={replacing}
          onReplace={() => setReplacing(true)}
          value={secret}
          onChange={setSecret}
          error={error}
        />
        <Field
          label="Redirect URL"
          name="redirectUrl"
          value={form.redirectUrl}
          onChange={set('redirectUrl')}
          error={error}
          placeholder={callback}
          hint="Register it at the provider. Empty: the address the browser used, as shown."
        />
        <Field
          label="Scopes"
          name="scopes"
          value={form.scopes}
          onChange={set('scopes')}
          error={error}
          hint="Separated by spaces; openid is required."
        />
        <Field
          label="Group claim"
          name="groupClaim"
          value={form.groupClaim}
          onChange={set('groupClaim')}
          error={error}
          hint="The claim that lists the user’s groups."
        />
        <GroupRoles rules={form.groupRoles} onChange={set('groupRoles')} error={error} />
        <label className="check field wide">
          <input type="checkbox" checked={form.requireLocalMfa} onChange={(e) => set('requireLocalMfa')(e.target.checked)} /> Also ask for
          the local authenticator code after SSO
          <span className="hint"> (otherwise multi-factor authentication is the identity provider’s job)</span>
        </label>
        <Field
          label="Provider CA certificate"
          name="caPem"
          value={form.caPem}
          onChange={set('caPem')}
          error={error}
          multiline
          placeholder="-----BEGIN CERTIFICATE-----"
          hint="PEM of the CA that signed the provider’s TLS certificate, when it is not a public one. Certificates are always checked."
        />
        {saved ? (
          <p className="saved wide" role="status">
            Saved.
          </p>
        ) : null}
        <FormEnd error={error} busy={busy} label="Save" busyLabel="Saving…" />
      </form>
    </section>
  );
}

/** The client secret is write-only: "stored" with Replace, or a password input for a new one. */
function ClientSecret(props: {
  stored: boolean;
  replacing: boolean;
  onReplace: () => void;
  value: string;
  onChange: (v: string) => void;
  error: ApiError | null;
}) {
  if (props.stored && !props.replacing) {
    const message = props.error?.field('clientSecret');
    return (
      <div className={message ? 'field invalid' : 'field'}>
        <span className="label">Client secret</span>
        <p data-testid="client-secret-state">
          stored{' '}
          <button type="button" className="link" onClick={props.onReplace}>
            Replace
          </button>
        </p>
        {message ? <p className="field-error">Client secret {message}</p> : null}
      </div>
    );
  }
  return (
    <Field
      label="Client secret"
      name="clientSecret"
      type="password"
      autoComplete="new-password"
      value={props.value}
      onChange={props.onChange}
      error={props.error}
      hint={props.stored ? 'Type the new secret; it replaces the stored one when you save.' : 'Write-only: it is never shown again.'}
    />
  );
}

/** Group → role rules, in order: the first whose group the user is in gives the role. */
function GroupRoles({ rules, onChange, error }: { rules: SsoGroupRole[]; onChange: (r: SsoGroupRole[]) => void; error: ApiError | null }) {
  const id = useId();
  const message = error?.field('groupRoles');
  const change = (i: number, rule: SsoGroupRole) => onChange(rules.map((r, j) => (j === i ? rule : r)));
  return (
    <fieldset className={message ? 'field invalid wide' : 'field wide'} aria-describedby={`${id}-hint`}>
      <legend>Groups and their roles</legend>
      {rules.map((r, i) => (
        <div key={i} className="inline group-rule">
          <input
            aria-label={`Group ${i + 1}`}
            value={r.group}
            spellCheck={false}
            onChange={(e) => change(i, { ...r, group: e.target.value })}
          />
          <select aria-label={`Role of group ${i + 1}`} value={r.role} onChange={(e) => change(i, { ...r, role: e.target.value as Role })}>
            {ROLES.map((role) => (
              <option key={role}>{role}</option>
            ))}
          </select>
          <button type="button" className="link" onClick={() => onChange(rules.filter((_, j) => j !== i))}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" className="add-rule" onClick={() => onChange([...rules, { group: '', role: 'operator' }])}>
        Add a group
      </button>
      {message ? (
        <p className="field-error" role="alert">
          Groups and their roles: {message}
        </p>
      ) : (
        <p className="hint" id={`${id}-hint`}>
          The first group the user is in gives the role. A user in none of them cannot sign in, and one who could before is disabled.
        </p>
      )}
    </fieldset>
  );
}
