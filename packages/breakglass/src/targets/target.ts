import { pipeline, Transform, type Readable } from 'node:stream';
import { GatehouseError } from '@gatehouse/core/errors';
import { FORBIDDEN_ADDRESS } from '../address-guard.js';

/** The three stages of the Test button (spec/001), in order. */
export const testStages = ['container', 'authentication', 'connection'] as const;
export type TestStage = (typeof testStages)[number];

export interface StageResult {
  stage: TestStage;
  /** `null` when the stage could not be checked because an earlier one failed. */
  ok: boolean | null;
  message: string;
}

export interface TestReport {
  ok: boolean;
  stages: StageResult[];
  /** Rights the key has beyond create/write: each a warning a person can act on. */
  privilegeWarnings: string[];
  /** Other warnings about the settings tested (plain HTTP to another machine), added by the server. */
  warnings?: string[];
}

/** Where a sealed export goes: an S3 bucket or an Azure Blob container. */
export interface StorageTarget {
  /** Where it writes, for messages and the run history: no secret in it. */
  readonly location: string;
  /**
   * Replaces the object `name` with the file's bytes in one upload, atomically: readers
   * see the old object until the new one is complete, and never a partial one.
   */
  putFile(name: string, file: string, bytes: number, contentType: string, onProgress?: (sentBytes: number) => void): Promise<void>;
  putBytes(name: string, body: Buffer, contentType: string): Promise<void>;
  /** Runs the three stages with a small probe object, then checks for excess rights. */
  test(probeName: string, onStage?: (stage: StageResult) => void): Promise<TestReport>;
  /**
   * Opens an object for reading, to check what a run that was cut off left behind. A
   * put-only key (the recommended set-up) may not read: that is an answer, not an error.
   */
  open(name: string): Promise<ObjectRead>;
  /**
   * Starts an object written in parts (an S3 multipart upload, an Azure block list): nothing
   * of it is readable until `completeParts`. Answers the upload's id, which a later process
   * needs to abort it.
   */
  startParts(name: string, contentType: string): Promise<string>;
  /** Uploads part `number` (1, 2, …; every part but the last at least 5 MiB); answers its tag for `completeParts`. */
  putPart(name: string, uploadId: string, number: number, body: Buffer): Promise<string>;
  /** Makes the object of the parts' tags, in order, in one step. */
  completeParts(name: string, uploadId: string, tags: readonly string[], contentType: string): Promise<void>;
  /**
   * Drops an upload's parts. An upload the store no longer knows is not an error; a
   * refusal with an answer (a key without the right) is `PartsAbortRefused`.
   */
  abortParts(name: string, uploadId: string): Promise<void>;
}

/** The store answered an abort of an upload in parts with a refusal: its parts stay until the bucket's lifecycle rule drops them. */
export class PartsAbortRefused extends GatehouseError {
  constructor(name: string, location: string) {
    super(
      'BAD_GATEWAY',
      `${location} refused to abort the upload in parts of ${name}: its parts stay in the bucket until a lifecycle rule drops incomplete uploads. Give the key the right to abort multipart uploads, or add such a rule.`,
    );
    this.name = 'PartsAbortRefused';
  }
}

/** What reading an object back found: its bytes as a stream, no such object, or why it could not be read (in our words). */
export type ObjectRead = { state: 'found'; body: Readable } | { state: 'missing' } | { state: 'unreadable'; reason: string };
/**
 * The client-side limit on storage requests (GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS): an
 * AbortSignal that fires `seconds` after the start or after the last sign of life
 * (`touch()`, on upload progress). The SDKs' own timeouts do not hold against a server
 * that accepts and then stops answering: Azure's `tryTimeoutInMs` is only sent to the
 * server, and an idle socket timeout can be retried into minutes.
 */
export class Watchdog {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;

  constructor(readonly seconds: number) {
    this.timer = setTimeout(() => this.controller.abort(new Error(`no answer within ${seconds} s`)), seconds * 1000);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Whether the limit was reached (what failed then failed because of it). */
  get fired(): boolean {
    return this.controller.signal.aborted;
  }

  /** Progress: the limit starts again. */
  touch(): void {
    if (!this.fired) this.timer.refresh();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** What to say when it fired: the endpoint, the limit, what was being done, and its setting. */
  reason(endpoint: string, doing: string): string {
    return `${endpoint} did not answer in time (no answer within ${this.seconds} s, GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS) while ${doing}. Check that the storage server is up and the network path to it.`;
  }

  /** A body being read under this limit: each chunk restarts it, the end stops it. */
  watch(body: Readable): Readable {
    const touch = () => this.touch();
    return pipeline(
      body,
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          touch();
          done(null, chunk);
        },
      }),
      () => this.stop(),
    );
  }

  /** Runs `fn` under a watchdog of its own; a failure after the limit is the timeout (connection stage), any other goes to `explain`. */
  static async limit<T>(
    seconds: number,
    endpoint: string,
    doing: string,
    fn: (watchdog: Watchdog) => Promise<T>,
    explain: (error: unknown) => Error,
  ): Promise<T> {
    const watchdog = new Watchdog(seconds);
    try {
      return await fn(watchdog);
    } catch (error) {
      throw watchdog.fired ? new TargetError('connection', watchdog.reason(endpoint, doing), false) : explain(error);
    } finally {
      watchdog.stop();
    }
  }
}

/** A target's one-request helper: `fn` under a Watchdog of `seconds`, a failure explained as for writing `name`. */
export function requestLimiter(seconds: number, endpoint: string, explain: (error: unknown, name: string) => TargetError) {
  return <T>(doing: string, name: string, fn: (abortSignal: AbortSignal) => Promise<T>): Promise<T> =>
    Watchdog.limit(
      seconds,
      endpoint,
      doing,
      (watchdog) => fn(watchdog.signal),
      (error) => explain(error, name),
    );
}

/** A failure of the storage, with the stage it belongs to and a reason a person can act on. */
export class TargetError extends GatehouseError {
  constructor(
    readonly stage: TestStage,
    message: string,
    /**
     * False when no storage server gave an answer Gatehouse knows (nothing answered, TLS
     * failed, not HTTP, or an answer not in the storage API's words): the failure then says
     * nothing of the container or the credentials, and the Test shows them as not checked.
     */
    readonly answered = true,
  ) {
    super('BAD_GATEWAY', message);
    this.name = 'TargetError';
  }
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);

/** Explains a network or TLS failure (no secret can be in it: only codes and the endpoint). */
export function networkReason(error: unknown, endpoint: string): string | null {
  const seen = new Set<unknown>();
  for (let e = error as { code?: unknown; cause?: unknown; message?: unknown } | undefined; e && !seen.has(e); e = e.cause as typeof e) {
    seen.add(e);
    const code = typeof e.code === 'string' ? e.code : undefined;
    // Our own refusal (address-guard.ts): its message names the host and the setting.
    if (code === FORBIDDEN_ADDRESS && typeof e.message === 'string') return e.message;
    if (code && TLS_CODES.has(code)) {
      return `The TLS certificate of ${endpoint} is not trusted (${code}). If it is your own CA, add it to caBundle; never turn verification off.`;
    }
    if (code === 'ECONNREFUSED') return `Nothing answers at ${endpoint} (connection refused). Check the URL, port and protocol.`;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `The host of ${endpoint} does not resolve. Check the URL or endpoint suffix.`;
    if (code === 'ECONNRESET' || code === 'EPIPE')
      return `${endpoint} closed the connection. Check the protocol (HTTP or HTTPS) and any proxy or firewall.`;
    if (
      code === 'ETIMEDOUT' ||
      code === 'ESOCKETTIMEDOUT' ||
      code === 'TimeoutError' ||
      (e as { name?: unknown }).name === 'TimeoutError'
    ) {
      return `${endpoint} did not answer in time. Check the network path and the URL.`;
    }
    // Node's HTTP parser: something answered, but not in HTTP (an SSH or database port, a TLS-only port).
    if (code?.startsWith('HPE_')) {
      return `${endpoint} did not answer in HTTP (${code}): no storage server listens there. Check the URL, port and protocol.`;
    }
    if (code === 'ERR_INVALID_PROTOCOL') {
      return `No request could be sent to ${endpoint} (${code}): its scheme does not match the protocol setting. Check the protocol (HTTP or HTTPS) and the endpoint.`;
    }
    if (typeof e.message === 'string' && /wrong version number|packet length too long/i.test(e.message)) {
      return `${endpoint} does not speak the protocol chosen (HTTP vs HTTPS). Check the protocol setting.`;
    }
  }
  return null;
}

/**
 * Why a request got no HTTP answer, when networkReason does not know the failure: its code
 * only (a Node.js or SDK code, never the remote's words).
 */
export function unansweredReason(error: unknown, endpoint: string): string {
  const e = error as { code?: unknown; name?: unknown };
  const code = typeof e.code === 'string' ? e.code : typeof e.name === 'string' ? e.name : undefined;
  return `No answer came from ${endpoint}${code ? ` (${code})` : ''}. Check the URL, port and protocol, and that the storage server is running.`;
}

/** What a target tells runTestStages, in its own words. */
export interface StageProbe {
  /** "Bucket x" or "Container x", for messages. */
  what: string;
  /** What to say when it does not exist. */
  missing: string;
  /** What to say when the credentials were accepted. */
  accepted: string;
  /** The name of the probe object the write stage uploads. */
  probeName: string;
  /** Where the target's requests go, for messages. */
  endpoint: string;
  /** The limit on the whole Test: when it cut the privilege check short, the report says so. */
  timeoutSeconds: number;
  /** Looks at the bucket or container; throws what its SDK threw. */
  look(signal: AbortSignal): Promise<void>;
  /** The HTTP status of an SDK error, when the server answered at all. */
  statusOf(error: unknown): number | undefined;
  /** Whether a failed look is the storage's own "does not exist". */
  notFound(error: unknown): boolean;
  /** Uploads the probe object. */
  upload(body: Buffer, watchdog: Watchdog): Promise<void>;
  /** The TargetError, with its stage, for a failed write of `name`. */
  explain(error: unknown, name: string): TargetError;
  /** The warnings for rights beyond create/write (read, list, delete). */
  excessRights(signal: AbortSignal): Promise<string[]>;
}

/**
 * Looks at the bucket or container: true or false when the answer says so; undefined when
 * the credentials may not look (a least-privilege key), so only the write can tell; a
 * string when the endpoint cannot be reached (the reason).
 */
async function lookAt(probe: StageProbe, watchdog: Watchdog): Promise<boolean | undefined | string> {
  try {
    await probe.look(watchdog.signal);
    return true;
  } catch (error) {
    if (watchdog.fired) return watchdog.reason(probe.endpoint, `looking at ${probe.what.charAt(0).toLowerCase()}${probe.what.slice(1)}`);
    const network = networkReason(error, probe.endpoint);
    if (network) return network;
    if (probe.statusOf(error) === undefined) return unansweredReason(error, probe.endpoint);
    return probe.notFound(error) ? false : undefined;
  }
}

/** Writes the probe object; throws a TargetError with its stage. */
async function writeProbe(probe: StageProbe, watchdog: Watchdog): Promise<void> {
  try {
    await probe.upload(Buffer.from(`Gatehouse break-glass probe ${new Date().toISOString()}\n`), watchdog);
  } catch (error) {
    throw watchdog.fired
      ? new TargetError('connection', watchdog.reason(probe.endpoint, `writing the probe object ${probe.probeName}`), false)
      : probe.explain(error, probe.probeName);
  }
}

/** The Test button's three stages, in order, each with its own result and reason, then the privilege check. */
export async function runTestStages(probe: StageProbe, onStage?: (stage: StageResult) => void): Promise<TestReport> {
  const watchdog = new Watchdog(probe.timeoutSeconds);
  try {
    return await runStages(probe, watchdog, onStage);
  } finally {
    watchdog.stop();
  }
}

async function runStages(probe: StageProbe, watchdog: Watchdog, onStage?: (stage: StageResult) => void): Promise<TestReport> {
  const stages: StageResult[] = [];
  const report = (stage: TestStage, ok: boolean | null, message: string) => {
    const s = { stage, ok, message };
    stages.push(s);
    onStage?.(s);
  };
  const skip = (stage: TestStage, why: string) => report(stage, null, `Not checked: ${why}.`);
  const done = (privilegeWarnings: string[] = []): TestReport => ({ ok: stages.every((s) => s.ok === true), stages, privilegeWarnings });

  const exists = await lookAt(probe, watchdog);
  if (typeof exists === 'string') {
    report('container', false, exists);
    skip('authentication', 'the storage endpoint could not be reached');
    skip('connection', 'the storage endpoint could not be reached');
    return done();
  }
  if (exists === false) {
    // "Does not exist" is only said to a request that was authenticated.
    report('container', false, probe.missing);
    report('authentication', true, probe.accepted);
    skip('connection', `${probe.what} does not exist`);
    return done();
  }
  try {
    await writeProbe(probe, watchdog);
  } catch (error) {
    // Anything but a TargetError may carry the remote's own words: they are not repeated.
    const e = error instanceof TargetError ? error : new TargetError('connection', `Writing the probe object ${probe.probeName} failed.`);
    if (e.stage === 'container') {
      report('container', false, e.message);
      report('authentication', true, probe.accepted);
      skip('connection', `${probe.what} does not exist`);
    } else if (e.stage === 'authentication') {
      if (exists) report('container', true, `${probe.what} exists.`);
      else skip('container', `without valid credentials ${probe.what} cannot be checked`);
      report('authentication', false, e.message);
      skip('connection', 'authentication failed');
    } else if (exists === true || e.answered) {
      report('container', true, `${probe.what} exists.`);
      report('authentication', true, probe.accepted);
      report('connection', false, e.message);
    } else {
      // A stage says OK only when the storage server said so.
      skip('container', 'the storage server gave no answer Gatehouse knows');
      skip('authentication', 'the storage server gave no answer Gatehouse knows');
      report('connection', false, e.message);
    }
    return done();
  }
  report('container', true, `${probe.what} exists.`);
  report('authentication', true, probe.accepted);
  report('connection', true, `Uploaded the probe object ${probe.probeName}.`);
  const warnings = await probe.excessRights(watchdog.signal);
  if (watchdog.fired)
    warnings.push(
      `The privilege check did not finish within ${watchdog.seconds} s: whether the key can also read, list or delete was not checked. Run the Test again.`,
    );
  return done(warnings);
}

/** True when `fn` succeeds: used to find rights a key should not have. */
export async function succeeds(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch {
    return false;
  }
}
