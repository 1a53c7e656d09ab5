import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type {
  BreakGlassPolicies,
  BreakGlassRun,
  BreakGlassRunList,
  BreakGlassRunProgress,
  BreakGlassSaveResult,
  BreakGlassSettingsBody,
  BreakGlassSettingsView,
  BreakGlassTestReport,
} from '@gatehouse/api';
import type { Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import type { ClientOptions } from './client.js';
import { cell, count, jsonOutput, localTime, printList } from './output.js';
import { formatBytes, readStdin } from './prompt.js';

function printTest(report: BreakGlassTestReport) {
  for (const s of report.stages) {
    const mark = s.ok === true ? 'OK  ' : s.ok === false ? 'FAIL' : 'SKIP';
    process.stdout.write(`${mark} ${s.stage.padEnd(14)} ${s.message}\n`);
  }
  for (const w of report.warnings ?? []) process.stdout.write(`WARN transport       ${w}\n`);
  for (const w of report.privilegeWarnings) process.stdout.write(`WARN privilege       ${w}\n`);
  if (report.ok && report.privilegeWarnings.length === 0) process.stdout.write('The key can write and nothing more.\n');
}

/** A settings JSON file, as `configure` and `test --file` take it. */
function readSettingsFile(file: string): BreakGlassSettingsBody {
  return JSON.parse(readFileSync(file, 'utf8')) as BreakGlassSettingsBody;
}

/** `gatehouse breakglass …`: settings, test, runs, policies, and the offline reader. Returns the group. */
export function breakGlassCommands(program: Command): Command {
  const bg = program.command('breakglass').description('the daily sealed export of every connection detail, and its offline reader');

  withClient(bg.command('settings'))
    .description('show the settings (secrets masked), where they come from, and the signing key fingerprint')
    .action(async (o: ClientOptions) => print(await client(o).call<BreakGlassSettingsView>('GET', '/breakglass/settings')));

  withClient(bg.command('status'))
    .description('where the settings come from, the next run, and the last Test anyone ran: when, who, each stage')
    .action(async (o: ClientOptions) => {
      const v = await client(o).call<BreakGlassSettingsView>('GET', '/breakglass/settings');
      if (jsonOutput()) return print({ origin: v.origin, error: v.error, warnings: v.warnings, nextRun: v.nextRun, lastTest: v.lastTest });
      process.stdout.write(
        `Settings:  ${v.origin === 'none' ? 'not configured' : `from the ${v.origin === 'mounted' ? 'mounted secret' : 'database'}`}\n`,
      );
      if (v.error) process.stdout.write(`Problem:   ${v.error}\n`);
      for (const w of v.warnings) process.stdout.write(`WARNING:   ${w}\n`);
      process.stdout.write(`Next run:  ${v.nextRun ? localTime(v.nextRun) : 'not scheduled'}\n`);
      const t = v.lastTest;
      if (!t) return void process.stdout.write('Last Test: none yet (./gatehouse breakglass test)\n');
      process.stdout.write(`Last Test: ${localTime(t.at)} by ${t.by ?? 'the server'}, ${t.ok ? 'passed' : 'FAILED'} (${t.target})\n`);
      printTest(t);
    });

  withClient(bg.command('configure'))
    .description('test settings from a JSON file (see docs/BREAKGLASS.md) and save them only when the Test passes')
    .requiredOption('--file <settings.json>', 'the settings; secrets may be given as "********" to keep the stored ones')
    .option('--force', 'save even when the Test fails (the stored settings are replaced)')
    .action(async (o: ClientOptions & { file: string; force?: boolean }) => {
      const result = await client(o).call<BreakGlassSaveResult>(
        'PUT',
        `/breakglass/settings?save=${o.force ? 'always' : 'if-test-passes'}`,
        readSettingsFile(o.file),
      );
      for (const w of result.warnings) process.stderr.write(`WARNING: ${w}\n`);
      if (!result.test.ok) process.exitCode = 1;
      if (jsonOutput()) return print(result);
      process.stdout.write(
        result.saved
          ? 'Saved. Test:\n'
          : 'Not saved: the Test failed, and the stored settings are unchanged. Fix the settings, or save them anyway with --force. Test:\n',
      );
      printTest(result.test);
    });

  withClient(bg.command('test'))
    .description('run the three-stage Test (container, authentication, connection) and the privilege check')
    .option('--file <settings.json>', 'test these settings instead of the stored ones, without saving them')
    .action(async (o: ClientOptions & { file?: string }) => {
      const body = o.file ? readSettingsFile(o.file) : {};
      const report = await client(o).call<BreakGlassTestReport>('POST', '/breakglass/test', body satisfies BreakGlassSettingsBody);
      if (!report.ok) process.exitCode = 1;
      if (jsonOutput()) return print(report);
      printTest(report);
    });

  withClient(bg.command('run'))
    .description('run the export now')
    .option('--wait', 'follow the run to its end, showing progress')
    .action(async (o: ClientOptions & { wait?: boolean }) => {
      const api = client(o);
      let run: BreakGlassRun | BreakGlassRunProgress = await api.call<BreakGlassRun>('POST', '/breakglass/runs', {});
      if (!o.wait) return print(run);
      while (run.result === 'running') {
        await new Promise((r) => setTimeout(r, 500));
        const progress: BreakGlassRunProgress = await api.call<BreakGlassRunProgress>('GET', `/breakglass/runs/${run.id}`);
        run = progress;
        if (process.stderr.isTTY)
          process.stderr.write(`\rattempt ${progress.attempts}: ${formatBytes(progress.uploadedBytes ?? 0)} uploaded   `);
      }
      if (process.stderr.isTTY) process.stderr.write('\n');
      print(run);
      if (run.result !== 'success') process.exitCode = 1;
    });

  withClient(bg.command('runs'))
    .description('the run history, newest first')
    .option('--limit <n>', 'how many', '20')
    .action(async (o: ClientOptions & { limit: string }) =>
      printList(await client(o).call<BreakGlassRunList>('GET', `/breakglass/runs?limit=${encodeURIComponent(o.limit)}`), {
        columns: [
          ['STARTED', (r) => localTime(r.startedAt)],
          ['TRIGGER', (r) => r.trigger],
          ['RESULT', (r) => (r.result === 'failure' ? `failure (${cell(r.errorStage)})` : r.result)],
          ['ATTEMPTS', (r) => String(r.attempts)],
          ['DEVICES', (r) => cell(r.counts.devices)],
          ['ACCOUNTS', (r) => cell(r.counts.accounts)],
          ['SIZE', (r) => (r.bytes === null ? '-' : formatBytes(r.bytes))],
          ['ID', (r) => r.id],
        ],
        noun: 'run',
        empty: 'No runs yet: ./gatehouse breakglass run starts one.',
      }),
    );

  withClient(bg.command('policy'))
    .description('print least-privilege policies for the writer (Gatehouse) and the break-glass reader')
    .option('--writer-arn <arn>', 'the IAM principal Gatehouse writes as')
    .option('--reader-arn <arn>', 'the IAM principal of the break-glass account')
    .action(async (o: ClientOptions & { writerArn?: string; readerArn?: string }) => {
      const q = new URLSearchParams();
      if (o.writerArn) q.set('writerArn', o.writerArn);
      if (o.readerArn) q.set('readerArn', o.readerArn);
      const p = await client(o).call<BreakGlassPolicies>('GET', `/breakglass/policy${q.size > 0 ? `?${q.toString()}` : ''}`);
      for (const [who, part] of [['Writer', p.writer] as const, ['Reader', p.reader] as const]) {
        process.stdout.write(`# ${who}: ${part.description}\n`);
        for (const d of part.documents) process.stdout.write(`## ${d.name}\n${d.content}\n\n`);
      }
    });

  withClient(bg.command('signing-key'))
    .description('print the public key that signs manifests: keep it offline with the age identity')
    .action(async (o: ClientOptions) => {
      const s = await client(o).call<BreakGlassSettingsView>('GET', '/breakglass/settings');
      process.stderr.write(`Fingerprint: ${s.signingKey.fingerprint}\n`);
      process.stdout.write(s.signingKey.publicKeyPem);
    });

  bg.command('open <file>')
    .description('open a downloaded export offline: check its manifest, show its age, list devices, print credentials or write PEM keys')
    .option('--manifest <file>', 'the manifest (default: breakglass.manifest.json beside the file)')
    .option('--public-key <file>', 'the signing public key you kept offline (./gatehouse breakglass signing-key)')
    .option('--identity <file...>', 'age identity file(s)')
    .option('--passphrase-stdin', 'read the age passphrase from standard input')
    .option('--project <name>', 'only this project')
    .option('--device <name>', "print this device's credentials")
    .option('--write-keys <dir>', 'write every PEM key as a 0600 file in this directory')
    .option('--ignore-manifest', 'open even when the manifest is missing or does not match (you are told why)')
    .action(
      async (
        file: string,
        o: {
          manifest?: string;
          publicKey?: string;
          identity?: string[];
          passphraseStdin?: boolean;
          project?: string;
          device?: string;
          writeKeys?: string;
          ignoreManifest?: boolean;
        },
      ) => {
        // `… | head` closes the pipe once it has read enough: that ends the listing, quietly.
        process.stdout.on('error', (error: NodeJS.ErrnoException) => {
          if (error.code !== 'EPIPE') throw error;
          process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
        });
        const { checkManifest, openExport } = await import('@gatehouse/breakglass/reader');
        const manifestFile = o.manifest ?? path.join(path.dirname(file), 'breakglass.manifest.json');
        const bytes = readFileSync(file);
        const manifestText = existsSync(manifestFile) ? readFileSync(manifestFile, 'utf8') : undefined;
        const publicKeyPem = o.publicKey ? readFileSync(o.publicKey, 'utf8') : undefined;
        // The manifest is checked before anything is decrypted: a damaged or replaced file is
        // refused as such, not reported as an age failure.
        const m = checkManifest(bytes, manifestText, publicKeyPem);
        if (m.status === 'verified') {
          process.stdout.write(`Manifest: verified, signed by ${m.manifest.signingKey}; the file is whole (${m.manifest.bytes} bytes).\n`);
        } else {
          process.stdout.write(`Manifest: ${m.status.toUpperCase()}: ${m.reason}.\n`);
          if (!o.ignoreManifest) {
            process.stderr.write(
              'Refusing to trust this file. Give --manifest and --public-key, or pass --ignore-manifest to read it anyway.\n',
            );
            process.exitCode = 3;
            return;
          }
        }
        const opened = await openExport({
          file: bytes,
          manifest: manifestText,
          publicKeyPem,
          identities: (o.identity ?? []).map((f) => readFileSync(f, 'utf8')),
          passphrase: o.passphraseStdin ? await readStdin() : undefined,
        });
        const age = opened.ageHours === null ? 'unknown age' : `${opened.ageHours.toFixed(1)} hours old`;
        process.stdout.write(`Generated: ${opened.generatedAt ?? 'unknown'} (${age})\n`);
        const projects = opened.projects.filter((p) => !o.project || p.name === o.project);
        if (o.writeKeys) {
          mkdirSync(o.writeKeys, { recursive: true, mode: 0o700 });
          const used = new Set<string>();
          for (const k of opened.pemKeys) {
            let name = (k['PEM file name'] || `${k['Device name']}-${k.Account}.pem`).replace(/[/\\\0]/g, '_');
            for (let n = 2; used.has(name); n += 1) name = `${n}-${name}`;
            used.add(name);
            writeFileSync(path.join(o.writeKeys, name), k['Private key'].endsWith('\n') ? k['Private key'] : `${k['Private key']}\n`, {
              mode: 0o600,
            });
            process.stdout.write(`wrote ${path.join(o.writeKeys, name)} (${k.Project} / ${k['Device name']} / ${k.Account})\n`);
          }
          return;
        }
        if (o.device) {
          const rows = projects.flatMap((p) => p.rows.filter((r) => r['Device name'] === o.device).map((r) => ({ project: p.name, ...r })));
          if (rows.length === 0) {
            process.stderr.write(
              `No device named ${o.device}${o.project ? ` in project ${o.project}` : ''}. List them without --device.\n`,
            );
            process.exitCode = 1;
            return;
          }
          for (const r of rows) {
            process.stdout.write('\n');
            for (const [k, v] of Object.entries(r)) process.stdout.write(`${k.padEnd(19)} ${v}\n`);
          }
          return;
        }
        for (const p of projects) {
          process.stdout.write(
            `\nProject ${p.name} (sheet ${p.sheet}): ${count(new Set(p.rows.map((r) => r['Device name'])).size, 'device')}\n`,
          );
          for (const r of p.rows) {
            process.stdout.write(
              `  ${r['Device name']}  ${r.Provider}  ${r.Protocol}  ${r['Public IP address'] || '-'}  ${r['Private IP address'] || '-'}  ${r.Account || '(no account)'}\n`,
            );
          }
        }
      },
    );
  return bg;
}
