import type { ImportResult } from '@gatehouse/api';
import { useState } from 'react';
import { Link } from 'wouter';
import { api, ApiError, RawBody } from '../api.js';
import { ErrorNote, PageHeader } from '../ui.js';
import { sampleCsv } from './import-sample.js';

/** Sends the file as it is (CSV as text/csv, JSON as JSON): the API parses and checks it. */
const importFile = (text: string, csv: boolean, dryRun: boolean) =>
  api<ImportResult>('POST', `/inventory/import?dryRun=${dryRun}`, new RawBody(text, csv ? 'text/csv; charset=utf-8' : 'application/json'));

const secretWord = { set: 'new', keep: 'kept', none: '—' } as const;

/**
 * CSV or JSON import with a preview: the file is checked and tried first (nothing is
 * written), every bad row is listed with its field; only then can it be imported, all rows
 * or none.
 */
export function Import() {
  const [file, setFile] = useState<{ name: string; text: string; csv: boolean } | null>(null);
  const [preview, setPreview] = useState<ImportResult | null>(null);
  const [done, setDone] = useState<ImportResult | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (dryRun: boolean, chosen = file) => {
    if (!chosen) return;
    setBusy(true);
    setError(null);
    try {
      const result = await importFile(chosen.text, chosen.csv, dryRun);
      if (dryRun) setPreview(result);
      else {
        setDone(result);
        setPreview(null);
      }
    } catch (e) {
      setPreview(null);
      setError(e instanceof ApiError ? e : new ApiError(0, 'INTERNAL', String(e)));
    } finally {
      setBusy(false);
    }
  };

  const choose = async (f: File | undefined) => {
    setDone(null);
    setPreview(null);
    setError(null);
    if (!f) return setFile(null);
    const chosen = { name: f.name, text: await f.text(), csv: !/\.json$/i.test(f.name) };
    setFile(chosen);
    await run(true, chosen);
  };

  return (
    <section aria-labelledby="import-title">
      <PageHeader title="Import devices and accounts" />
      <p className="lead">
        One row per account, with the columns of the break-glass workbook:{' '}
        <code>
          project, device, provider, protocols, public_ip, private_ip, url_port, access_type, tags, account, password, private_key,
          pem_file_name, passphrase, extra_credential
        </code>
        . A row whose secret is <code>********</code> keeps the stored value. The file is checked first; nothing is written until you import
        it.
      </p>
      <p>
        <a
          className="button"
          href={`data:text/csv;charset=utf-8,${encodeURIComponent(sampleCsv())}`}
          download="gatehouse-import-sample.csv"
        >
          Download a sample CSV
        </a>{' '}
        <span className="muted">every column, two example rows to replace with your own</span>
      </p>
      <div className="card">
        <label className="field">
          <span className="label">CSV or JSON file</span>
          <input
            type="file"
            accept=".csv,.json,text/csv,application/json"
            onChange={(e) => void choose(e.target.files?.[0])}
            aria-label="Inventory file"
          />
        </label>
        {busy ? <p className="muted">Checking {file?.name}…</p> : null}
        {error && error.issues.length > 0 ? (
          <div className="error-note" role="alert">
            <p>
              <strong>{file?.name} cannot be imported:</strong> {error.issues.length} problem{error.issues.length === 1 ? '' : 's'}. Nothing
              was written. Fix the file and choose it again.
            </p>
            <table className="data issues" aria-label="Problems">
              <thead>
                <tr>
                  <th>Where</th>
                  <th>Problem</th>
                </tr>
              </thead>
              <tbody>
                {error.issues.map((i, n) => (
                  <tr key={n}>
                    <td className="mono">{i.path}</td>
                    <td>{i.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <ErrorNote error={error} />
        )}
        {preview ? (
          <div className="preview" aria-label="Preview" role="region">
            <p>
              <strong>{file?.name}</strong> is valid: {preview.rows} row{preview.rows === 1 ? '' : 's'}. Importing creates{' '}
              {preview.projectsCreated} project
              {preview.projectsCreated === 1 ? '' : 's'}, {preview.devicesCreated} device{preview.devicesCreated === 1 ? '' : 's'} and{' '}
              {preview.accountsCreated} account{preview.accountsCreated === 1 ? '' : 's'}, and updates {preview.devicesUpdated} device
              {preview.devicesUpdated === 1 ? '' : 's'} and {preview.accountsUpdated} account{preview.accountsUpdated === 1 ? '' : 's'}.
            </p>
            <div className="table-wrap">
              <table className="data" aria-label="Rows to import">
                <thead>
                  <tr>
                    <th>Line</th>
                    <th>Project</th>
                    <th>Device</th>
                    <th className="hide-narrow">Provider</th>
                    <th className="hide-narrow">Address</th>
                    <th>Account</th>
                    <th className="hide-narrow">Password</th>
                    <th className="hide-narrow">Private key</th>
                  </tr>
                </thead>
                <tbody>
                  {(preview.preview ?? []).map((r) => (
                    <tr key={r.line}>
                      <td className="muted">{r.line}</td>
                      <td>{r.project}</td>
                      <td>{r.device}</td>
                      <td className="hide-narrow">{r.provider}</td>
                      <td className="hide-narrow mono">{r.address ?? '—'}</td>
                      <td>{r.account ?? '—'}</td>
                      <td className="hide-narrow">{secretWord[r.secrets.password]}</td>
                      <td className="hide-narrow">{secretWord[r.secrets.private_key]}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {(preview.preview?.length ?? 0) < preview.rows ? (
              <p className="hint">The first {preview.preview?.length} rows are shown.</p>
            ) : null}
            <div className="actions">
              <button type="button" className="primary" disabled={busy} onClick={() => void run(false)}>
                Import {preview.rows} row{preview.rows === 1 ? '' : 's'}
              </button>
            </div>
          </div>
        ) : null}
        {done ? (
          <p className="saved" role="status">
            Imported {done.rows} rows: {done.projectsCreated} projects, {done.devicesCreated} devices and {done.accountsCreated} accounts
            created, {done.devicesUpdated} devices and {done.accountsUpdated} accounts updated. <Link href="/devices">See the devices</Link>
            .
          </p>
        ) : null}
      </div>
    </section>
  );
}
