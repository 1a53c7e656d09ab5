import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { ClientChannel, PseudoTtyInfo, ServerChannel } from 'ssh2';
import { AsciicastRecorder } from './asciicast.js';
import { RelayStats } from './relay-stats.js';
import type { AuthorizedTarget, GatewayUser, SessionEnd, SessionKind } from './broker.js';
import type { TargetConnection } from './connect-target.js';
import { ExecOutputWatch, summaryMarker, type ExecStream } from './exec-output.js';
import type { SshGatewayOptions } from './gateway.js';
import { isLegacyScp, LegacyScpLog, SftpOperationLog, type FileOperation } from './sftp-log.js';
import { startSession } from './ssh2-channels.js';
import { GatehouseError } from '@gatehouse/core';

/** What a user's SSH channel is: every SSH session kind but the connection's own. */
export type ChannelKind = Exclude<SessionKind, 'connection' | 'vnc' | 'rdp'>;

/** The terminal a user's session channel asked for (pty request, then window changes). */
export interface PtyState {
  info: PseudoTtyInfo | undefined;
}

/** How often a live session's byte counts are reported while they change. */
export const PROGRESS_MS = 2000;

/** One channel (shell, exec or sftp) proxied to a channel on the device, and its recording. */
export class ProxiedSession {
  private targetChannel: ClientChannel | undefined;
  private recorder: AsciicastRecorder | undefined;
  /** Bytes from the user to the device, and back. */
  bytesIn = 0;
  bytesOut = 0;
  private exit: { code: number } | { signal: string; coreDumped: boolean; description: string } | undefined;
  private finished: Promise<void> | undefined;
  private fileLog: SftpOperationLog | undefined;
  private scpLog: LegacyScpLog | undefined;
  /** Exec without a terminal: what its streams were, when they are not recorded whole. */
  private watches: ExecOutputWatch[] = [];
  /** File operations are reported in order, one after another. */
  private fileOps: Promise<void> = Promise.resolve();
  private channelClosed: Promise<void> = Promise.resolve();
  private progress: NodeJS.Timeout | undefined;
  /** Where the relay waited, when the gateway collects it (`relayStats`). */
  private relayStats: RelayStats | undefined;
  private resolveDone!: () => void;
  private readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));
  readonly id = randomUUID();

  constructor(
    private readonly options: Required<SshGatewayOptions>,
    private readonly stream: ServerChannel,
    private readonly kind: ChannelKind,
    private readonly command: string | null,
    private readonly pty: PtyState,
    private readonly user: GatewayUser,
    private readonly target: AuthorizedTarget,
    private readonly remoteAddress: string,
    /** The device's channel, opened when the user's was accepted; undefined when the device could not be reached. */
    private readonly deviceChannel: ClientChannel | undefined,
  ) {
    stream.on('error', () => undefined);
  }

  async run(connection: Promise<TargetConnection>): Promise<void> {
    const t = await connection;
    if (!t.ok) {
      this.tellUser(t.reason);
      this.resolveDone();
      return;
    }
    let channel: ClientChannel;
    try {
      channel = await this.startTargetChannel();
    } catch (error) {
      const reason = `${this.target.deviceName} refused the ${this.kind} channel: ${(error as Error).message}`;
      await this.options.broker
        .connectionFailed({
          user: this.user,
          target: this.target,
          gateway: t.gateway,
          segment: t.segment,
          remoteAddress: this.remoteAddress,
          at: new Date().toISOString(),
          reason,
        })
        .catch((e: unknown) => this.options.logger.error({ err: e }, 'could not record a failed channel'));
      this.tellUser(reason);
      this.resolveDone();
      return;
    }
    this.targetChannel = channel;
    channel.on('error', () => undefined);
    const startedAt = new Date();
    let recording: string | null = null;
    if (this.kind === 'shell' || this.kind === 'exec') {
      recording = path.join(startedAt.toISOString().slice(0, 10), `${this.id}.cast`);
      this.recorder = await AsciicastRecorder.create(path.join(this.options.recordingsDir, recording), {
        width: this.pty.info?.cols ?? 80,
        height: this.pty.info?.rows ?? 24,
        timestamp: startedAt.getTime() / 1000,
        term: this.pty.info?.term,
        command: this.kind === 'exec' ? (this.command ?? undefined) : undefined,
      });
    }
    await this.options.broker.sessionStarted({
      id: this.id,
      user: this.user,
      target: this.target,
      gateway: t.gateway,
      segment: t.segment,
      kind: this.kind,
      command: this.command,
      remoteAddress: this.remoteAddress,
      startedAt: startedAt.toISOString(),
      recording,
      kex: t.kex,
    });
    this.reportProgress();
    this.wire(channel, this.channelClosed);
    await this.done;
  }

  /** Asks the device's channel for what the user asked (a forward's is open already). */
  private async startTargetChannel(): Promise<ClientChannel> {
    const channel = this.deviceChannel;
    if (!channel) throw new GatehouseError('BAD_GATEWAY', 'the device has no channel for it');
    // Listened to first: a quick command's exit status and close can arrive in the same read
    // as the request's reply, before any await resumes, and unlike its output they are not buffered.
    channel.on('exit', (code: number | null, signal?: string, coreDumped?: boolean, description?: string) => {
      this.exit = code !== null ? { code } : { signal: signal ?? 'KILL', coreDumped: coreDumped ?? false, description: description ?? '' };
    });
    this.channelClosed = new Promise<void>((closed) => channel.once('close', () => closed()));
    const window = this.pty.info && {
      term: this.pty.info.term,
      cols: this.pty.info.cols,
      rows: this.pty.info.rows,
      width: this.pty.info.width,
      height: this.pty.info.height,
      modes: this.pty.info.modes,
    };
    switch (this.kind) {
      case 'shell':
        await startSession(channel, { kind: 'shell' }, window);
        break;
      case 'exec':
        await startSession(channel, { kind: 'exec', command: this.command ?? '' }, window);
        break;
      case 'sftp':
        await startSession(channel, { kind: 'subsystem', name: 'sftp' });
        break;
      case 'forward':
        break;
    }
    return channel;
  }

  private wire(channel: ClientChannel, channelClosed: Promise<void>): void {
    const { stream, recorder } = this;
    if (this.kind === 'sftp') this.fileLog = new SftpOperationLog((op) => this.reportFileOperation(op));
    if (this.kind === 'exec') this.scpLog = LegacyScpLog.of(this.command ?? '');
    const fileLog = this.fileLog ?? this.scpLog;
    // A runbook's input is only what the engine generated: new credentials on their way to chpasswd.
    const recordInput = setting(this.options.recordInput) && recorder !== undefined && this.user.runbook === undefined;
    const record = this.recordedPart(recorder, recordInput);
    const stats = this.options.relayStats ? new RelayStats(stream, channel) : undefined;
    this.relayStats = stats;
    // While the recording waits for the disk, the recorded side waits for the recording.
    const holdWhileRecording = (source: { pause(): unknown; resume(): unknown }, direction: 'up' | 'down') => {
      if (!recorder?.congested) return;
      source.pause();
      const resumed = stats?.recorderPaused(direction);
      void recorder.drained().then(() => {
        resumed?.();
        source.resume();
      });
    };
    stream.on('data', (d: Buffer) => {
      this.bytesIn += d.length;
      fileLog?.fromClient(d);
      if (recordInput && record.stdin(d)) {
        recorder.input(d);
        holdWhileRecording(stream, 'up');
      }
    });
    channel.on('data', (d: Buffer) => {
      this.bytesOut += d.length;
      fileLog?.fromServer(d);
      if (!record.stdout(d)) return;
      recorder?.output(d);
      holdWhileRecording(channel, 'down');
    });
    channel.stderr.on('data', (d: Buffer) => {
      this.bytesOut += d.length;
      if (!record.stderr(d)) return;
      recorder?.output(d);
      holdWhileRecording(channel.stderr, 'down');
    });
    // The user's EOF becomes the device's EOF (stdin closed); the device's exit status
    // is passed on before the channel ends, or OpenSSH reports none.
    stream.pipe(channel);
    channel.pipe(stream, { end: false });
    channel.stderr.pipe(stream.stderr, { end: false });
    // The user's channel ends once the device's output, buffered or not, has been passed on.
    void channelClosed
      .then(() => Promise.all([drained(channel), drained(channel.stderr)]))
      .then(() => {
        if (!stream.writable) return void this.finish(null);
        if (this.exit && 'code' in this.exit) stream.exit(this.exit.code);
        else if (this.exit) {
          try {
            stream.exit(this.exit.signal, this.exit.coreDumped, this.exit.description);
          } catch {
            // A signal ssh2 does not know (a vendor's name@domain): an exit status says it failed.
            stream.exit(255);
          }
        }
        stream.end();
        void this.finish(null);
      });
    stream.once('close', () => {
      channel.close();
      void this.finish(null);
    });
  }

  /**
   * For an exec without a terminal (unless binary output is to be recorded): a watch per
   * stream that answers whether a chunk goes to the recording. Legacy scp is a transfer
   * from its first byte. Otherwise every chunk is recorded.
   */
  private recordedPart(recorder: AsciicastRecorder | undefined, recordInput: boolean): Record<ExecStream, (d: Buffer) => boolean> {
    const all = () => true;
    if (!recorder || this.kind !== 'exec' || this.pty.info || setting(this.options.recordBinaryExec)) {
      return { stdout: all, stderr: all, stdin: all };
    }
    const scp = isLegacyScp(this.command ?? '');
    const watch = (stream: ExecStream) => {
      const w = new ExecOutputWatch(stream, scp && stream !== 'stderr');
      this.watches.push(w);
      if (w.binary) recorder.marker(w.startMarker());
      return (d: Buffer) => {
        const wasBinary = w.binary;
        if (w.admit(d)) return true;
        if (!wasBinary) recorder.marker(w.startMarker());
        return false;
      };
    };
    return { stdout: watch('stdout'), stderr: watch('stderr'), stdin: recordInput ? watch('stdin') : all };
  }

  resize(rows: number, cols: number, height: number, width: number): void {
    this.targetChannel?.setWindow(rows, cols, height, width);
    this.recorder?.resize(cols, rows);
  }

  signal(name: string): void {
    this.targetChannel?.signal(name);
  }

  /** Ends the session from the gateway's side (stop, or the device went away). */
  async stop(reason: string): Promise<void> {
    if (!this.targetChannel) return this.done;
    // The recording ends with why, as the user was told.
    this.recorder?.output(Buffer.from(`\r\ngatehouse: ${reason}\r\n`));
    this.tellUser(reason);
    this.targetChannel.close();
    return this.finish(reason);
  }

  /**
   * Shows the user `text` on a line of its own, without ending the session, and records it:
   * a terminal gets it with its output (never the device's input), an exec or shell without
   * one on stderr, so that its output stays as the device wrote it. An sftp session and a
   * forward carry a protocol in their data and get nothing.
   */
  warn(text: string): void {
    if (this.kind === 'sftp' || this.kind === 'forward' || !this.stream.writable) return;
    const line = `\r\n*** ${text} ***\r\n`;
    if (this.pty.info) this.stream.write(line);
    else this.stream.stderr.write(line);
    this.recorder?.output(Buffer.from(line));
  }

  private tellUser(message: string): void {
    if (!this.stream.writable) return;
    // A forwarded connection is raw TCP: it has no stderr or exit status to tell anything with.
    if (this.kind === 'forward') return void this.stream.destroy();
    this.stream.stderr.write(`gatehouse: ${message}\r\n`);
    this.stream.exit(255);
    this.stream.end();
  }

  private reportFileOperation(op: FileOperation): void {
    this.fileOps = this.fileOps
      .then(() => this.options.broker.fileOperation(this.id, op))
      .catch((error: unknown) => this.options.logger.error({ err: error, sessionId: this.id }, 'could not record a file operation'));
  }

  /** Every PROGRESS_MS while the session runs, its byte counts when they changed (in order with its file operations). */
  private reportProgress(): void {
    const report = this.options.broker.sessionProgress?.bind(this.options.broker);
    if (!report) return;
    let reported = { bytesIn: 0, bytesOut: 0 };
    this.progress = setInterval(() => {
      const now = { bytesIn: this.bytesIn, bytesOut: this.bytesOut };
      if (this.finished || (now.bytesIn === reported.bytesIn && now.bytesOut === reported.bytesOut)) return;
      reported = now;
      this.fileOps = this.fileOps
        .then(() => report(this.id, now))
        .catch((error: unknown) => this.options.logger.warn({ err: error, sessionId: this.id }, 'could not report a session’s bytes'));
    }, PROGRESS_MS);
    this.progress.unref();
  }

  private logRelayStats(): void {
    const stats = this.relayStats?.summary();
    if (!stats) return;
    stats.up.bytes = this.bytesIn;
    stats.down.bytes = this.bytesOut;
    this.options.logger.info({ sessionId: this.id, kind: this.kind, relay: stats }, 'relay stats');
  }

  private finish(reason: string | null): Promise<void> {
    clearInterval(this.progress);
    this.finished ??= (async () => {
      try {
        for (const w of this.watches) if (w.binary) this.recorder?.marker(summaryMarker(w.summary()));
        await this.recorder?.close();
      } catch (error) {
        this.options.logger.error({ err: error, sessionId: this.id }, 'recording could not be written completely');
      }
      this.fileLog?.finish(reason ?? 'The channel closed with the file still open.');
      if (this.scpLog) this.reportFileOperation(this.scpLog.operation(this.exit && 'code' in this.exit ? this.exit.code : null));
      await this.fileOps;
      this.logRelayStats();
      // Killed by a signal: no exit status, and no success either.
      const killed = this.exit && 'signal' in this.exit ? this.exit : undefined;
      const end: SessionEnd = {
        endedAt: new Date().toISOString(),
        bytesIn: this.bytesIn,
        bytesOut: this.bytesOut,
        result: reason === null && !killed ? 'success' : 'failure',
        exitStatus: this.exit && 'code' in this.exit ? this.exit.code : null,
        exitSignal: killed?.signal ?? null,
        reason:
          reason ?? (killed ? `The command was killed by signal ${killed.signal}${killed.coreDumped ? ' (core dumped)' : ''}.` : null),
        ...recordingHash(this.recorder),
      };
      await this.options.broker
        .sessionEnded(this.id, end)
        .catch((error: unknown) => this.options.logger.error({ err: error, sessionId: this.id }, 'could not record the end of a session'));
      this.resolveDone();
    })();
    return this.finished;
  }
}

/** The closed recording's hash as written, when every write succeeded. */
function recordingHash(recorder: AsciicastRecorder | undefined): Pick<SessionEnd, 'recording'> {
  const written = recorder?.written;
  return written?.sha256 === undefined ? {} : { recording: { sha256: written.sha256, size: written.bytes } };
}

/** A setting given as a value or as a function that reads it now. */
function setting(value: boolean | (() => boolean)): boolean {
  return typeof value === 'function' ? value() : value;
}

/** Resolves when a readable has delivered all its data (or after 5 s, should it never end). */
function drained(readable: NodeJS.ReadableStream & { readableEnded: boolean }): Promise<void> {
  if (readable.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 5000);
    readable.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
