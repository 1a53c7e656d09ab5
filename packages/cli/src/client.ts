import { existsSync, readFileSync, statSync, createReadStream } from 'node:fs';
import { request } from 'node:https';
import tls from 'node:tls';
import path from 'node:path';
import { GatehouseError, isErrorCode, type ErrorCode, type FieldIssue } from '@gatehouse/core/errors';
import { credentialsFile, profileChosen, profileName, readProfiles, sameServer, type Profile } from './profiles.js';

export { credentialsFile } from './profiles.js';

export interface ClientOptions {
  url?: string | undefined;
  token?: string | undefined;
  ca?: string | undefined;
  dataDir?: string | undefined;
  /** The saved sign-in (`--profile`); GATEHOUSE_PROFILE or "default" when not given. */
  profile?: string | undefined;
  /** Use no saved profile at all (`setup`: the server is a new one). */
  ignoreProfile?: boolean | undefined;
  /** The profile may not exist yet (`login` makes it). */
  newProfile?: boolean | undefined;
}

/** `<dir>/tls/server.crt`, when it exists. */
function certOf(dataDir: string | undefined): string | undefined {
  if (dataDir === undefined) return undefined;
  const file = path.join(dataDir, 'tls', 'server.crt');
  return existsSync(file) ? path.resolve(file) : undefined;
}

/** An error the API answered, with the server's code and the fields at fault. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly issues: readonly FieldIssue[] = [],
  ) {
    super(message);
  }
}

/** The server's code, or for an answer without one (a proxy's), INTERNAL or BAD_REQUEST by its status. */
function codeOf(status: number, code: unknown): ErrorCode {
  if (isErrorCode(code)) return code;
  return status >= 500 ? 'INTERNAL' : 'BAD_REQUEST';
}

/** The environment's say in a connection: GATEHOUSE_URL, GATEHOUSE_TOKEN, GATEHOUSE_CA, GATEHOUSE_DATA_DIR. */
export interface ConnectionEnv {
  url?: string | undefined;
  token?: string | undefined;
  ca?: string | undefined;
  dataDir?: string | undefined;
}

/**
 * The URL, token and CA file a client uses. What is given wins: --url, --ca and --data-dir over
 * the environment, the environment over the saved profile (`found`, named `profile`), and `local`
 * when none says. A profile's token and CA go only to the origin they were saved for: with another
 * URL neither is used, and without a token of its own the command is refused here, before any request.
 */
export function connectionOf(
  opts: ClientOptions,
  env: ConnectionEnv,
  profile: string,
  found: Partial<Profile> | undefined,
  local: string,
): { url: string; token: string | undefined; caFile: string | undefined } {
  const url = (opts.url ?? env.url ?? found?.url ?? local).replace(/\/$/, '');
  const saved = found?.url !== undefined && sameServer(found.url, url) ? found : {};
  const token = opts.token ?? env.token ?? saved.token;
  if (token === undefined && found?.token !== undefined && found.url !== undefined && !opts.newProfile)
    throw new GatehouseError(
      'CONFLICT',
      `Profile ${profile} holds the API token for ${found.url}, not ${url}: a saved token is sent only to the server it was saved for. ` +
        `Sign in to ${url} under a profile of its own: ./gatehouse login --url ${url} --profile <name> --username <user>, ` +
        `then add --profile <name> to later commands (or set GATEHOUSE_PROFILE); or leave out --url (and GATEHOUSE_URL) to use ${found.url}.`,
    );
  const caFile = opts.ca ?? certOf(opts.dataDir) ?? env.ca ?? saved.ca ?? certOf(env.dataDir ?? './data');
  return { url, token, caFile };
}

/** A small HTTPS client for the API that verifies the server's certificate against a CA file. */
export class ApiClient {
  readonly url: string;
  readonly token: string | undefined;
  readonly caFile: string | undefined;
  private readonly ca: string | undefined;
  cookie: string | undefined;
  csrf: string | undefined;

  /** The profile this client's token and CA came from. */
  readonly profile: string;

  /**
   * What is given wins: --url, --ca and --data-dir over the environment, the environment
   * over the saved profile. A profile's token and CA belong to the server (origin) they were
   * saved for: with another URL neither is used, and without a token of its own
   * (GATEHOUSE_TOKEN) the command stops before any request rather than send it there.
   */
  constructor(opts: ClientOptions) {
    this.profile = profileName(opts.profile);
    const found = opts.ignoreProfile ? undefined : readProfiles()[this.profile];
    if (!found && !opts.ignoreProfile && !opts.newProfile && profileChosen(opts.profile))
      throw new GatehouseError(
        'NOT_FOUND',
        `--profile ${this.profile}: no such profile in ${credentialsFile()} (gatehouse profiles lists them; ./gatehouse login --profile ${this.profile} makes it).`,
      );
    // The same default port as the server: 443 as root, 8443 otherwise.
    const local = `https://127.0.0.1:${process.getuid?.() === 0 ? 443 : 8443}`;
    const env = {
      url: process.env.GATEHOUSE_URL,
      token: process.env.GATEHOUSE_TOKEN,
      ca: process.env.GATEHOUSE_CA,
      dataDir: process.env.GATEHOUSE_DATA_DIR,
    };
    ({ url: this.url, token: this.token, caFile: this.caFile } = connectionOf(opts, env, this.profile, found, local));
    this.ca = this.caFile ? readFileSync(this.caFile, 'utf8') : undefined;
  }

  async call<T = unknown>(
    method: string,
    route: string,
    body?: unknown,
    opts: { contentType?: string; file?: string; onProgress?: (sent: number, total: number) => void } = {},
  ): Promise<T> {
    const target = new URL(`/api/v1${route}`, this.url);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (this.cookie) headers.cookie = this.cookie;
    if (this.csrf) headers['x-csrf-token'] = this.csrf;
    let payload: Buffer | undefined;
    let total = 0;
    if (opts.file) {
      total = statSync(opts.file).size;
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = String(total);
    } else if (body !== undefined) {
      payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const { status, text, setCookie } = await new Promise<{ status: number; text: string; setCookie: string[] | undefined }>(
      (resolve, reject) => {
        const req = request(target, { method, headers, ca: this.ca, timeout: 600_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), setCookie: res.headers['set-cookie'] }),
          );
          res.on('error', reject);
        });
        req.on('error', (error: NodeJS.ErrnoException) => reject(explainConnectionError(error, this.url, this.caFile)));
        if (opts.file) {
          let sent = 0;
          const stream = createReadStream(opts.file);
          stream.on('data', (chunk) => {
            sent += chunk.length;
            opts.onProgress?.(sent, total);
          });
          stream.pipe(req);
        } else {
          req.end(payload);
        }
      },
    );
    const session = setCookie?.find((c) => c.startsWith('gh_session='));
    if (session) this.cookie = session.split(';')[0];
    const data: unknown =
      text === ''
        ? undefined
        : (() => {
            try {
              return JSON.parse(text) as unknown;
            } catch {
              return text;
            }
          })();
    if (status >= 400) {
      const err = (data as { error?: { code: string; message: string; issues?: { path: string; message: string }[] } } | undefined)?.error;
      const message = err?.message ?? `The server answered ${status}.`;
      // Without a token the server cannot say which sign-in is missing: the CLI can.
      const hint =
        status === 401 && this.token === undefined
          ? ` No API token for ${this.url} in profile ${this.profile}: sign in with ./gatehouse login --url ${this.url}${this.profile === 'default' ? '' : ` --profile ${this.profile}`}.`
          : '';
      throw new ApiError(status, codeOf(status, err?.code), `${message}${hint}`, err?.issues ?? []);
    }
    return data as T;
  }

  /**
   * TLS options that verify another listener of this server (the RDP tunnel) as the API is
   * verified: the same CA, and the host name of the server's URL.
   */
  tlsOptions(): Pick<tls.ConnectionOptions, 'ca' | 'checkServerIdentity'> {
    const hostname = new URL(this.url).hostname.replace(/^\[|\]$/g, '');
    return { ca: this.ca, checkServerIdentity: (_host, cert) => tls.checkServerIdentity(hostname, cert) };
  }

  /** GET `route` and stream the body to `out`. */
  download(route: string, out: NodeJS.WritableStream): Promise<void> {
    const target = new URL(`/api/v1${route}`, this.url);
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    return new Promise((resolve, reject) => {
      const req = request(target, { method: 'GET', headers, ca: this.ca, timeout: 600_000 }, (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let err: { code?: string; message?: string } | undefined;
            try {
              err = (JSON.parse(text) as { error?: { code: string; message: string } }).error;
            } catch {
              err = undefined;
            }
            reject(
              new ApiError(
                res.statusCode ?? 0,
                codeOf(res.statusCode ?? 0, err?.code),
                err?.message ?? `The server answered ${res.statusCode}.`,
                [],
              ),
            );
          });
          return;
        }
        res.pipe(out, { end: false });
        res.once('end', () => resolve());
        res.once('error', reject);
      });
      req.on('error', (error: NodeJS.ErrnoException) => reject(explainConnectionError(error, this.url, this.caFile)));
      req.end();
    });
  }
}

export function explainConnectionError(error: NodeJS.ErrnoException, url: string, caFile: string | undefined): GatehouseError {
  if (error.code === 'ECONNREFUSED')
    return new GatehouseError('UNREACHABLE', `Nothing is listening at ${url}. Start it with "./gatehouse server", or pass --url.`);
  if (
    error.code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    error.code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    error.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'
  ) {
    return new GatehouseError(
      'CONFIG_INVALID',
      `The server's certificate is not trusted${caFile ? ` by ${caFile}` : ''}. Pass --ca <data-dir>/tls/server.crt (or set GATEHOUSE_CA).`,
    );
  }
  if (error.code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return new GatehouseError(
      'CONFIG_INVALID',
      `The server's certificate does not name the host in ${url}. Use the host name the certificate was made for.`,
    );
  return new GatehouseError('UNREACHABLE', `Could not reach ${url}: ${error.message}`);
}
