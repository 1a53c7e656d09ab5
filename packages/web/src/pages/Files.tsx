import { useEffect, useRef, useState } from 'react';
import { Link, useSearch } from 'wouter';
import type { ErrorBody, FileListing, FileLocation, FileVisitMessage, FileVisitStart } from '@gatehouse/api';
import { api, API, ApiError, currentCsrfToken, errorCodeOf, openStartedSocket, query, type ErrorCode } from '../api.js';
import { Empty, ErrorNote, PageHeader, SkeletonRows } from '../ui.js';
import { AccountChooser, useChosenAccount } from './account-choice.js';

const join = (dir: string, name: string) => (dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`);

function size(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1048576
      ? `${(n / 1024).toFixed(1)} KiB`
      : n < 1073741824
        ? `${(n / 1048576).toFixed(1)} MiB`
        : `${(n / 1073741824).toFixed(2)} GiB`;
}

/** PUT with upload progress (fetch cannot report it): the body is the file, streamed to the device. */
function upload(url: string, file: File, onProgress: (sent: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.setRequestHeader('x-csrf-token', currentCsrfToken() ?? '');
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status < 300) return resolve();
      let message = `The server answered ${xhr.status}.`;
      let code: ErrorCode | undefined;
      try {
        ({ message, code } = (JSON.parse(xhr.responseText) as ErrorBody).error);
      } catch {
        // keep the status
      }
      reject(new ApiError(xhr.status, errorCodeOf(xhr.status, code), message));
    };
    xhr.onerror = () => reject(new ApiError(0, 'UNREACHABLE', 'The upload was cut off. Check the connection and try again.'));
    xhr.send(file);
  });
}

/**
 * The visit's one SFTP session (a WebSocket to GET /files/visit that holds it open while
 * the page is open): its id once open, and why it could not open or ended.
 */
function useFileVisit(deviceId: string, accountId: string | undefined, chosen: boolean) {
  const [visit, setVisit] = useState<string | null>(null);
  const [ended, setEnded] = useState<string | null>(null);
  useEffect(() => {
    if (!chosen) return;
    setVisit(null);
    setEnded(null);
    let told = false;
    const ws = openStartedSocket<FileVisitStart>('/files/visit', () => ({ type: 'start', deviceId, ...(accountId ? { accountId } : {}) }));
    ws.onmessage = (event: MessageEvent<string>) => {
      const m = JSON.parse(event.data) as FileVisitMessage;
      if (m.type === 'ready') return setVisit(m.visit);
      told = true;
      setVisit(null);
      setEnded(m.message);
    };
    ws.onclose = () => {
      setVisit(null);
      if (!told) setEnded('The connection to Gatehouse closed. Reload the page.');
    };
    return () => {
      ws.onclose = null;
      ws.close();
    };
  }, [deviceId, accountId, chosen]);
  return { visit, ended };
}

/**
 * A file browser on a device over SFTP through the built-in gateway: one visit of the page
 * (its listings, downloads and uploads until it closes) is one SFTP session there, logged
 * and audited like `sftp`.
 */
export function FilesPage({ deviceId }: { deviceId: string }) {
  const params = new URLSearchParams(useSearch());
  const { choice, error: choiceError } = useChosenAccount(deviceId);
  const chosen = choice.kind === 'chosen';
  const accountId = choice.kind === 'chosen' ? choice.accountId : undefined;
  const [path, setPath] = useState(params.get('path') ?? '.');
  const [listing, setListing] = useState<FileListing | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [progress, setProgress] = useState<{ name: string; sent: number; total: number } | null>(null);
  const [reload, setReload] = useState(0);
  const uploadInput = useRef<HTMLInputElement>(null);
  const { visit, ended } = useFileVisit(deviceId, accountId, chosen);
  const at = (p: string) => query({ deviceId, accountId, path: p, visit: visit ?? undefined } satisfies FileLocation);

  useEffect(() => {
    if (!chosen) return;
    if (!visit) {
      setLoading(ended === null);
      return;
    }
    let current = true;
    setLoading(true);
    api<FileListing>('GET', `/files${query({ deviceId, accountId, path, visit } satisfies FileLocation)}`).then(
      (l) => {
        if (!current) return;
        setListing(l);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (!current) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [deviceId, chosen, accountId, path, reload, visit, ended]);

  const send = async (file: File | undefined) => {
    // The next pick of the same file is a change again (after a cancelled replace, say).
    if (uploadInput.current) uploadInput.current.value = '';
    if (!file || !listing) return;
    const target = join(listing.path, file.name);
    const existing = listing.entries.find((e) => e.name === file.name);
    if (existing) {
      if (existing.type === 'directory' || existing.link?.type === 'directory') {
        setError(`${target} is ${existing.link ? 'a link to a folder' : 'a folder'}: rename the file to upload it here.`);
        return;
      }
      if (
        !window.confirm(
          `${target} already exists (${size(existing.size)}). Replace it with the uploaded ${file.name} (${size(file.size)})?`,
        )
      )
        return;
    }
    setError(null);
    setProgress({ name: file.name, sent: 0, total: file.size });
    try {
      await upload(`${API}/files${at(target)}`, file, (sent) => setProgress({ name: file.name, sent, total: file.size }));
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    } finally {
      setProgress(null);
    }
  };

  if (!chosen)
    return (
      <section aria-labelledby="files-title">
        <p className="crumbs">
          <Link href={`/devices/${deviceId}`}>Back to the device</Link>
        </p>
        <PageHeader title="Files" />
        {choice.kind === 'ask' || choiceError ? (
          <AccountChooser accounts={choice.kind === 'ask' ? choice.accounts : []} error={choiceError} />
        ) : null}
      </section>
    );

  const crumbs = listing ? listing.path.split('/').filter((p) => p !== '') : [];
  return (
    <section aria-labelledby="files-title">
      <p className="crumbs">
        <Link href={`/devices/${deviceId}`}>Back to the device</Link>
      </p>
      <PageHeader title="Files">
        <label className="button primary upload">
          Upload…
          <input
            type="file"
            ref={uploadInput}
            aria-label="Upload a file"
            disabled={!listing || !visit || progress !== null}
            onChange={(e) => void send(e.target.files?.[0])}
          />
        </label>
      </PageHeader>
      <nav className="path" aria-label="Folder">
        <button type="button" className="link" onClick={() => setPath('/')}>
          /
        </button>
        {crumbs.map((c, i) => (
          <span key={i}>
            <button type="button" className="link" onClick={() => setPath(`/${crumbs.slice(0, i + 1).join('/')}`)}>
              {c}
            </button>
            {i < crumbs.length - 1 ? ' / ' : ''}
          </span>
        ))}
      </nav>
      {progress ? (
        <div className="card" role="status" aria-live="polite">
          Uploading {progress.name}: {size(progress.sent)} of {size(progress.total)}
          <progress max={progress.total} value={progress.sent} aria-label="Upload progress" />
        </div>
      ) : null}
      <ErrorNote error={ended ?? error} />
      {listing && listing.entries.length === 0 ? (
        <Empty title="This folder is empty">
          <p>Upload a file into it with “Upload…”.</p>
        </Empty>
      ) : (
        <div className={loading ? 'table-wrap loading' : 'table-wrap'} aria-busy={loading}>
          <table className="data" aria-label="Files">
            <thead>
              <tr>
                <th>Name</th>
                <th>Size</th>
                <th className="hide-narrow">Modified</th>
              </tr>
            </thead>
            <tbody>
              {listing?.parent ? (
                <tr>
                  <td colSpan={3}>
                    <button type="button" className="link" onClick={() => setPath(listing.parent ?? '/')}>
                      .. (up)
                    </button>
                  </td>
                </tr>
              ) : null}
              {(listing?.entries ?? []).map((e) => (
                <tr key={e.name} data-file={e.name}>
                  <td>
                    {e.type === 'directory' ? (
                      <button type="button" className="link" onClick={() => setPath(join(listing?.path ?? '.', e.name))}>
                        {e.name}/
                      </button>
                    ) : e.type === 'file' || e.link?.type === 'file' ? (
                      <a href={`${API}/files/download${at(join(listing?.path ?? '.', e.name))}`} download={e.name}>
                        {e.name}
                      </a>
                    ) : e.link?.type === 'directory' ? (
                      <button type="button" className="link" onClick={() => setPath(join(listing?.path ?? '.', e.name))}>
                        {e.name}/
                      </button>
                    ) : (
                      <span>{e.name}</span>
                    )}
                    {e.link ? (
                      <span className="muted">
                        {' '}
                        → {e.link.target}
                        {e.link.type === null ? ' (missing)' : ''}
                      </span>
                    ) : null}
                  </td>
                  <td>{e.type === 'directory' ? '—' : size(e.size)}</td>
                  <td className="hide-narrow">{e.modifiedAt ? new Date(e.modifiedAt).toLocaleString() : '—'}</td>
                </tr>
              ))}
              <SkeletonRows rows={6} columns={3} loading={listing === null && loading} />
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
