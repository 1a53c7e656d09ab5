import type {
  BreakGlassRun,
  BreakGlassRunProgress,
  BreakGlassSettingsView,
  BreakGlassTestReport,
  BreakGlassTestStage,
} from '@gatehouse/api';
import { parseConnectionString } from '@gatehouse/api/connection-string';
import { useCallback, useEffect, useState } from 'react';
import { api, apiLines, ApiError, type User } from '../api.js';
import { Ago, Empty, ErrorNote, Field, PageHeader, StatusBadge } from '../ui.js';

type Provider = 's3' | 'blob';

type View = BreakGlassSettingsView;
type Stage = BreakGlassTestStage;
type Report = BreakGlassTestReport;
/** A run as started (POST) or followed (GET, with the bytes sent so far). */
type Run = BreakGlassRun & Partial<Pick<BreakGlassRunProgress, 'uploadedBytes'>>;

const STAGES: { stage: Stage['stage']; label: string }[] = [
  { stage: 'container', label: 'Container or bucket exists' },
  { stage: 'authentication', label: 'Authentication' },
  { stage: 'connection', label: 'Connection' },
];

/** Every field of the form as text, whatever the provider. */
type Form = Record<
  | 'executeTime'
  | 'timeZone'
  | 'accessKeyId'
  | 'secretAccessKey'
  | 'bucket'
  | 'protocol'
  | 'url'
  | 'region'
  | 'accountName'
  | 'accountKey'
  | 'sasToken'
  | 'container'
  | 'endpointSuffix'
  | 'blobEndpoint'
  | 'prefix'
  | 'encryption'
  | 'ageRecipients'
  | 'passphrase'
  | 'caBundle'
  | 'alertWebhookUrl',
  string
> & { provider: Provider; pathStyle: boolean; credentials: 'keys' | 'default' };

const EMPTY: Form = {
  provider: 's3',
  executeTime: '03:00',
  timeZone: 'UTC',
  accessKeyId: '',
  secretAccessKey: '',
  bucket: '',
  protocol: 'https',
  url: '',
  region: '',
  accountName: '',
  accountKey: '',
  sasToken: '',
  container: '',
  endpointSuffix: 'core.windows.net',
  blobEndpoint: '',
  prefix: 'gatehouse/',
  encryption: 'age',
  ageRecipients: '',
  passphrase: '',
  caBundle: '',
  alertWebhookUrl: '',
  pathStyle: false,
  credentials: 'keys',
};

/** What the API shows for a secret that is set; sent back, it keeps the stored value. */
const MASK = '********';

function formOf(settings: Record<string, unknown> | null): Form {
  if (!settings) return EMPTY;
  const text = (k: string) => {
    const v = settings[k];
    return typeof v === 'string' ? v : '';
  };
  const form = { ...EMPTY };
  for (const key of Object.keys(EMPTY) as (keyof Form)[]) {
    if (key === 'pathStyle' || key === 'provider' || key === 'ageRecipients' || key === 'credentials') continue;
    form[key] = text(key) || EMPTY[key];
  }
  form.provider = settings.provider === 'blob' ? 'blob' : 's3';
  form.pathStyle = settings.pathStyle === true;
  form.credentials = settings.credentials === 'default' ? 'default' : 'keys';
  form.ageRecipients = Array.isArray(settings.ageRecipients) ? (settings.ageRecipients as string[]).join('\n') : '';
  return form;
}

/** The settings body for the API: only the provider's own fields (the API refuses others by name). */
function bodyOf(f: Form): Record<string, unknown> {
  const common = {
    provider: f.provider,
    executeTime: f.executeTime.trim(),
    timeZone: f.timeZone.trim(),
    prefix: f.prefix,
    encryption: f.encryption,
    ageRecipients: f.ageRecipients
      .split(/\s+/)
      .map((r) => r.trim())
      .filter((r) => r !== ''),
    ...(f.encryption === 'passphrase' ? { passphrase: f.passphrase } : {}),
    caBundle: f.caBundle,
    alertWebhookUrl: f.alertWebhookUrl,
  };
  if (f.provider === 's3') {
    const own = f.credentials === 'default';
    return {
      ...common,
      credentials: f.credentials,
      accessKeyId: own ? '' : f.accessKeyId,
      secretAccessKey: own ? '' : f.secretAccessKey,
      bucket: f.bucket,
      protocol: f.protocol,
      url: f.url,
      region: f.region,
      pathStyle: f.pathStyle,
    };
  }
  return {
    ...common,
    accountName: f.accountName,
    accountKey: f.accountKey,
    sasToken: f.sasToken,
    container: f.container,
    protocol: f.protocol,
    endpointSuffix: f.endpointSuffix,
    blobEndpoint: f.blobEndpoint,
  };
}

/**
 * The Blob fields of an Azure connection string: with an account key
 * (DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=…) or the
 * portal's SAS form (BlobEndpoint=…;SharedAccessSignature=…). It replaces every Blob field,
 * so nothing saved earlier (an old blob endpoint, the other credential) stays hidden in
 * the form; undefined when the text holds none of its keys.
 */
function fromConnectionString(text: string): Partial<Form> | undefined {
  const fields = parseConnectionString(text);
  if (Object.keys(fields).length === 0) return undefined;
  return {
    protocol: fields.protocol ?? 'https',
    // Left empty with a blob endpoint: the server takes the account from it.
    accountName: fields.accountName ?? '',
    accountKey: fields.accountKey ?? '',
    sasToken: (fields.sasToken ?? '').replace(/^\?/, ''),
    endpointSuffix: fields.endpointSuffix ?? EMPTY.endpointSuffix,
    blobEndpoint: fields.blobEndpoint ?? '',
  };
}

/**
 * Whether the form sends its secrets somewhere else than the saved settings (another
 * endpoint, bucket or container): the API then refuses a stored secret, so the page asks
 * for it next to the field before the user saves.
 */
function destinationChanged(f: Form, saved: Form | null): boolean {
  if (!saved || saved.provider !== f.provider) return false;
  const norm = (s: string) => s.trim().replace(/\/+$/, '').toLowerCase();
  const fields: (keyof Form)[] =
    f.provider === 's3'
      ? ['url', 'protocol', 'bucket', 'pathStyle', ...(f.url.trim() === '' ? (['region'] as const) : [])]
      : ['blobEndpoint', 'accountName', 'endpointSuffix', 'protocol', 'container'];
  return fields.some((k) => norm(String(f[k])) !== norm(String(saved[k])));
}

const TIME_ZONES: string[] = (() => {
  try {
    return (Intl as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
})();

function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * System management → Break glass backup, laid out as in spec/001: the remote storage
 * provider and its fields, the time zone, age recipients and the manifest signing key; Test
 * shows the three stages as each completes, Run now shows the run's progress, and the
 * history lists every run. Settings from a mounted secret are shown read-only.
 */
export function BreakGlass({ user }: { user: User }) {
  const [view, setView] = useState<View | null>(null);
  const [form, setForm] = useState<Form>(EMPTY);
  const [connectionString, setConnectionString] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState<'save' | 'test' | 'run' | null>(null);
  const [stages, setStages] = useState<Stage[] | null>(null);
  const [report, setReport] = useState<Report | null>(null);
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [current, setCurrent] = useState<Run | null>(null);

  const isAdmin = user.role === 'admin';
  const readOnly = !isAdmin || view?.readOnly === true;
  const moved = destinationChanged(form, view?.settings ? formOf(view.settings) : null);

  const loadRuns = useCallback(async () => {
    const r = await api<{ items: Run[] }>('GET', '/breakglass/runs?limit=20');
    setRuns(r.items);
    return r.items;
  }, []);

  useEffect(() => {
    api<View>('GET', '/breakglass/settings').then(
      (v) => {
        setView(v);
        setForm(formOf(v.settings));
      },
      (e: unknown) => setError(e instanceof ApiError ? e : new ApiError(0, 'INTERNAL', String(e))),
    );
    loadRuns().then(
      (items) => {
        const running = items.find((r) => r.result === 'running');
        if (running) setCurrent(running);
      },
      () => undefined,
    );
  }, [loadRuns]);

  // A run in progress is followed every half second until it ends.
  useEffect(() => {
    if (!current || current.result !== 'running') return;
    const t = setTimeout(() => {
      api<Run>('GET', `/breakglass/runs/${current.id}`).then(
        (r) => {
          setCurrent(r);
          if (r.result !== 'running') void loadRuns();
        },
        (e: unknown) => setError(e instanceof ApiError ? e : new ApiError(0, 'INTERNAL', String(e))),
      );
    }, 500);
    return () => clearTimeout(t);
  }, [current, loadRuns]);

  const set =
    <K extends keyof Form>(key: K) =>
    (value: Form[K]) =>
      setForm((f) => ({ ...f, [key]: value }));

  const fail = (e: unknown) =>
    setError(e instanceof ApiError ? e : new ApiError(0, 'INTERNAL', e instanceof Error ? e.message : String(e)));

  const test = async () => {
    setBusy('test');
    setError(null);
    setSaved(null);
    setStages([]);
    setReport(null);
    try {
      await apiLines('/breakglass/test', bodyOf(form), (line) => {
        if (line.type === 'stage') setStages((s) => [...(s ?? []), line as unknown as Stage]);
        else if (line.type === 'report') setReport(line as unknown as Report);
        else if (line.type === 'error') throw new ApiError(500, 'INTERNAL', String(line.message));
      });
    } catch (e) {
      setStages(null);
      fail(e);
    } finally {
      setBusy(null);
    }
  };

  const save = async () => {
    setBusy('save');
    setError(null);
    setSaved(null);
    setStages(null);
    setReport(null);
    try {
      const res = await api<View & { test: Report }>('PUT', '/breakglass/settings', bodyOf(form));
      setView(res);
      setForm(formOf(res.settings));
      setConnectionString('');
      setSaved('Saved. The Test ran with the saved settings:');
      setStages(res.test.stages);
      setReport(res.test);
    } catch (e) {
      fail(e);
    } finally {
      setBusy(null);
    }
  };

  const runNow = async () => {
    setBusy('run');
    setError(null);
    try {
      const run = await api<Run>('POST', '/breakglass/runs');
      setCurrent(run);
      await loadRuns();
    } catch (e) {
      fail(e);
    } finally {
      setBusy(null);
    }
  };

  if (!view) {
    return (
      <section>
        <PageHeader title="Break glass backup" />
        {error ? <ErrorNote error={error} /> : <div className="placeholder" aria-busy="true" />}
      </section>
    );
  }

  const field = (label: string, key: Exclude<keyof Form, 'provider' | 'pathStyle'>, extra: Partial<Parameters<typeof Field>[0]> = {}) => (
    <Field label={label} name={key} value={form[key]} onChange={set(key)} error={error} disabled={readOnly} {...extra} />
  );
  // The API shows a secret that is set as a fixed mask (********); sent back, it keeps the stored value.
  const protocol = (
    <SelectField label="Protocol" name="protocol" value={form.protocol} onChange={set('protocol')} disabled={readOnly} error={error} />
  );
  const secretHint = 'Shown as a fixed mask when set; type a new one to replace it.';
  /** The API's message for a field drawn without <Field>. */
  const fieldError = (name: string, label: string) => {
    const message = error?.field(name);
    return message ? <p className="field-error" role="alert">{`${label} ${message}`}</p> : null;
  };
  /** A stored secret that would follow a changed destination: the API refuses it, the page says so first. */
  const destinationSecret = (key: 'secretAccessKey' | 'accountKey' | 'sasToken', hint: string) =>
    moved && form[key] === MASK ? 'Enter the secret again: the destination changed.' : hint;

  return (
    <section aria-labelledby="breakglass-title">
      <PageHeader title="Break glass backup">
        <span className="muted">
          {view.nextRun ? (
            <>
              Next run <time dateTime={view.nextRun}>{new Date(view.nextRun).toLocaleString()}</time>
            </>
          ) : (
            'Not scheduled'
          )}
        </span>
      </PageHeader>
      <p className="lead">
        Every day at the execute time, Gatehouse seals a workbook of every device&apos;s connection details and credentials into your bucket
        or container, readable with standard tools when Gatehouse is down. Only the latest file is kept.
      </p>
      {view.readOnly ? (
        <p className="notice" role="status">
          These settings come from a mounted secret (<code>GATEHOUSE_BREAKGLASS_CONFIG</code>) and are read-only here. Change the secret to
          change them.
        </p>
      ) : null}
      {view.error ? <ErrorNote error={view.error} /> : null}
      {view.warnings.map((w) => (
        <p key={w} className="warning" role="alert">
          {w}
        </p>
      ))}

      <form
        className="card"
        aria-label="Break glass settings"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <fieldset className="field" disabled={readOnly}>
          <legend>Remote storage provider</legend>
          <div className="checks">
            {(['s3', 'blob'] as const).map((p) => (
              <label key={p} className="check">
                <input type="radio" name="provider" checked={form.provider === p} onChange={() => set('provider')(p)} />{' '}
                {p === 's3' ? 'S3' : 'Blob'}
              </label>
            ))}
          </div>
        </fieldset>
        <div className="form-grid">
          {field('Execute time', 'executeTime', { hint: 'Daily, as HH:mm.', required: true, placeholder: '03:00' })}
          {field('Time zone', 'timeZone', { list: 'time-zones', hint: 'The execute time is in this zone.' })}
          <datalist id="time-zones">
            {TIME_ZONES.map((z) => (
              <option key={z} value={z} />
            ))}
          </datalist>
        </div>
        {form.provider === 's3' ? (
          <div className="form-grid" data-provider="s3">
            {field('Access key ID', 'accessKeyId', {
              hint:
                form.credentials === 'default'
                  ? 'Not used: the server’s own AWS identity is chosen below.'
                  : 'Required, with the secret key. The server’s own AWS identity is a separate, explicit choice below.',
              disabled: readOnly || form.credentials === 'default',
            })}
            {field('Secret key', 'secretAccessKey', {
              type: 'password',
              hint: destinationSecret('secretAccessKey', secretHint),
              autoComplete: 'new-password',
              disabled: readOnly || form.credentials === 'default',
            })}
            {field('Bucket name', 'bucket', { required: true })}
            {protocol}
            {field('URL', 'url', { hint: 'The S3 endpoint (host[:port]); empty for AWS.', placeholder: 's3.example.com' })}
            {field('Region', 'region', { placeholder: 'us-east-1' })}
          </div>
        ) : (
          <div className="form-grid" data-provider="blob">
            <div className="field wide">
              <label htmlFor="connection-string">Paste an Azure connection string</label>
              {/* It holds the account key or SAS: masked like them. */}
              <input
                id="connection-string"
                type="password"
                autoComplete="off"
                spellCheck={false}
                value={connectionString}
                disabled={readOnly}
                placeholder="BlobEndpoint=…;SharedAccessSignature=…"
                onChange={(e) => {
                  setConnectionString(e.target.value);
                  const fields = fromConnectionString(e.target.value);
                  if (fields) setForm((f) => ({ ...f, ...fields }));
                }}
              />
              <p className="hint">
                The portal&apos;s SAS connection string, or one with the account key. It replaces the Blob fields below and under Advanced;
                it is not stored itself.
              </p>
            </div>
            {field('Storage account name', 'accountName', { hint: 'May be left empty with a blob endpoint: it names the account.' })}
            {field('Key', 'accountKey', {
              type: 'password',
              hint: destinationSecret('accountKey', `The account key, or leave it empty and give a SAS token. ${secretHint}`),
              autoComplete: 'new-password',
            })}
            {field('SAS token', 'sasToken', {
              type: 'password',
              hint: destinationSecret(
                'sasToken',
                `Instead of the key (least privilege): a container SAS with create and write only. A new one replaces a saved key. ${secretHint}`,
              ),
              autoComplete: 'new-password',
            })}
            {field('Container name', 'container', { required: true })}
            {protocol}
            {field('Endpoint suffix', 'endpointSuffix', { placeholder: 'core.windows.net' })}
          </div>
        )}
        <div className="form-grid">
          {field('Age recipients', 'ageRecipients', {
            multiline: true,
            hint: 'One age1… public key per line: the holders who can open the file with age -d.',
          })}
        </div>
        <details className="advanced">
          <summary>Advanced</summary>
          <div className="form-grid">
            {field('Object name prefix', 'prefix', { hint: 'The "folder" in the bucket; the writer policy is scoped to it.' })}
            {form.provider === 's3' ? (
              <>
                <label className="check field">
                  <input
                    type="checkbox"
                    checked={form.pathStyle}
                    disabled={readOnly}
                    onChange={(e) => set('pathStyle')(e.target.checked)}
                  />{' '}
                  Path-style addressing (most S3-compatible servers)
                </label>
                <label className="check field">
                  <input
                    type="checkbox"
                    checked={form.credentials === 'default'}
                    disabled={readOnly}
                    onChange={(e) => set('credentials')(e.target.checked ? 'default' : 'keys')}
                  />{' '}
                  Use the server’s own AWS identity (environment or instance role) instead of an access key: AWS endpoints over HTTPS only
                </label>
                {fieldError('credentials', 'Credentials')}
              </>
            ) : (
              <>
                {field('Blob endpoint', 'blobEndpoint', {
                  hint: 'A full endpoint URL instead of the account and suffix (Azurite, private link).',
                })}
              </>
            )}
            <div className="field">
              <label htmlFor="encryption">Encryption</label>
              <select id="encryption" value={form.encryption} disabled={readOnly} onChange={(e) => set('encryption')(e.target.value)}>
                <option value="age">age, to the recipients</option>
                <option value="passphrase">age, with a passphrase</option>
                <option value="none" disabled={!view.serverAllows.plaintext && form.encryption !== 'none'}>
                  {view.serverAllows.plaintext
                    ? 'none (not recommended)'
                    : 'none (not allowed: only the server setting breakglassAllowPlaintext allows it)'}
                </option>
              </select>
              {fieldError('encryption', 'Encryption')}
            </div>
            {form.encryption === 'passphrase' ? field('Passphrase', 'passphrase', { type: 'password', hint: secretHint }) : null}
            {field('CA bundle (PEM)', 'caBundle', { multiline: true, hint: 'Extra certificates to trust for a private endpoint.' })}
            {field('Alert webhook URL', 'alertWebhookUrl', {
              type: 'password',
              autoComplete: 'new-password',
              hint: 'Called when a run fails or the file is stale. A secret (a chat webhook URL lets anyone post): shown as a fixed mask when set; type a new one to replace it.',
            })}
          </div>
        </details>
        <ErrorNote error={error?.issues.every((i) => (i.path.split(/[.[]/)[0] ?? '') in form) && error.issues.length > 0 ? null : error} />
        {saved ? <p className="saved">{saved}</p> : null}
        {stages ? <TestResult stages={stages} report={report} running={busy === 'test'} /> : null}
        {isAdmin ? (
          <div className="actions">
            <button type="submit" className="primary" disabled={readOnly || busy !== null}>
              {busy === 'save' ? 'Saving and testing…' : 'Save'}
            </button>
            <button type="button" onClick={() => void test()} disabled={busy !== null}>
              {busy === 'test' ? 'Testing…' : 'Test'}
            </button>
            <button
              type="button"
              onClick={() => void runNow()}
              disabled={busy !== null || view.settings === null || current?.result === 'running'}
            >
              Run now
            </button>
          </div>
        ) : null}
      </form>

      {current ? <RunProgress run={current} /> : null}

      <h2>Manifest signing key</h2>
      <p className="hint">
        Each run writes a manifest signed with this key; give the public key to the holders so they can check the file.
      </p>
      <div className="signing-key">
        <span className="mono small">{view.signingKey.fingerprint}</span>
        <pre className="mono copyable">{view.signingKey.publicKeyPem}</pre>
        <button type="button" onClick={() => void navigator.clipboard?.writeText(view.signingKey.publicKeyPem)}>
          Copy
        </button>
      </div>

      <h2>Run history</h2>
      {runs && runs.length === 0 ? (
        <Empty title="No runs yet">
          <p>
            {view.settings ? 'The first runs at the execute time, or now with “Run now”.' : 'Save the settings, then Test and Run now.'}
          </p>
        </Empty>
      ) : (
        <div className="table-wrap">
          <table className="data" aria-label="Run history">
            <thead>
              <tr>
                <th>Started</th>
                <th>Trigger</th>
                <th>Result</th>
                <th className="hide-narrow">Devices</th>
                <th className="hide-narrow">Size</th>
                <th>Details</th>
              </tr>
            </thead>
            <tbody>
              {(runs ?? []).map((r) => (
                <tr key={r.id} data-run={r.id}>
                  <td>
                    <Ago at={r.startedAt} />
                  </td>
                  <td>{r.trigger}</td>
                  <td>
                    <StatusBadge status={r.result === 'success' ? 'succeeded' : r.result === 'failure' ? 'failed' : 'running'} />
                  </td>
                  <td className="hide-narrow">{r.counts.devices ?? '—'}</td>
                  <td className="hide-narrow">{bytes(r.bytes)}</td>
                  <td className="wrap">{r.error ? `${r.errorStage ? `${r.errorStage}: ` : ''}${r.error}` : (r.target ?? '')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function SelectField(props: {
  label: string;
  name: string;
  value: string;
  onChange: (v: string) => void;
  disabled: boolean;
  error: ApiError | null;
}) {
  const message = props.error?.field(props.name);
  return (
    <div className={message ? 'field invalid' : 'field'}>
      <label htmlFor={`bg-${props.name}`}>{props.label}</label>
      <select id={`bg-${props.name}`} value={props.value} disabled={props.disabled} onChange={(e) => props.onChange(e.target.value)}>
        <option value="https">HTTPS</option>
        <option value="http">HTTP</option>
      </select>
      {message ? <p className="field-error">{`${props.label} ${message}`}</p> : null}
    </div>
  );
}

/** The three stages, each with its result and reason as it arrives, then the privilege check. */
function TestResult({ stages, report, running }: { stages: Stage[]; report: Report | null; running: boolean }) {
  return (
    <div className="test-result" aria-live="polite" aria-label="Test result" aria-busy={running} data-complete={!running}>
      <ol className="stages">
        {STAGES.map(({ stage, label }) => {
          const s = stages.find((x) => x.stage === stage);
          const state = !s ? (running ? 'pending' : 'skipped') : s.ok === true ? 'ok' : s.ok === false ? 'failed' : 'skipped';
          return (
            <li key={stage} className={`stage stage-${state}`} data-stage={stage} data-state={state}>
              <span className="stage-mark" aria-hidden="true">
                {state === 'ok' ? '✓' : state === 'failed' ? '✗' : state === 'pending' ? '…' : '–'}
              </span>
              <span className="stage-label">
                {label}: {state === 'ok' ? 'success' : state === 'failed' ? 'failed' : state === 'pending' ? 'testing' : 'not tested'}
              </span>
              {s?.message ? <span className="stage-message">{s.message}</span> : null}
            </li>
          );
        })}
      </ol>
      {report?.warnings?.map((w) => (
        <p key={w} className="warning" role="alert" data-warning="transport">
          {w}
        </p>
      ))}
      {report ? (
        report.privilegeWarnings.length > 0 ? (
          <div className="warning" role="alert">
            <strong>The key has more rights than it needs:</strong>
            <ul>
              {report.privilegeWarnings.map((w) => (
                <li key={w}>{w}</li>
              ))}
            </ul>
          </div>
        ) : report.ok ? (
          <p className="saved">The key can write and nothing more.</p>
        ) : null
      ) : null}
    </div>
  );
}

function RunProgress({ run }: { run: Run }) {
  const seconds = Math.round(((run.finishedAt ? Date.parse(run.finishedAt) : Date.now()) - Date.parse(run.startedAt)) / 1000);
  return (
    <div className={`card run run-${run.result}`} role="status" aria-live="polite" aria-label="Current run">
      <strong>{run.result === 'running' ? 'Running…' : run.result === 'success' ? 'The run succeeded.' : 'The run failed.'}</strong>{' '}
      <span className="muted">
        {bytes(run.uploadedBytes ?? run.bytes)} uploaded · {seconds} s{run.attempts > 1 ? ` · attempt ${run.attempts}` : ''}
      </span>
      {run.result === 'running' ? <progress aria-label="Run progress" /> : null}
      {run.error ? <p className="field-error">{run.error}</p> : null}
    </div>
  );
}
