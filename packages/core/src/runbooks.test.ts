import { describe, expect, it } from 'vitest';
import {
  generatePassword,
  parseRunbook,
  resolveInputs,
  RunbookSchemaError,
  shellQuote,
  substitute,
  verdictOf,
  type StepResult,
} from './runbooks.js';

const ok = `
name: Sample
version: 2
inputs:
  port: { type: integer, default: "{{device.sshPort}}" }
  mode: { type: enum, values: [a, b], default: a }
steps:
  - id: listening
    type: check
    title: something listens
    run: ss -Hltn "sport = :{{port}}" | grep -q .
  - id: start
    type: fix
    for: listening
    title: start it
    run: echo start {{mode}}
  - id: login
    type: verify-login
    title: a new login works
    when: { passed: listening }
`;

function problemsOf(text: string): string[] {
  try {
    parseRunbook(text);
  } catch (error) {
    if (error instanceof RunbookSchemaError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
  return [];
}

const step = (over: Partial<StepResult>): StepResult => ({
  id: 'x',
  type: 'check',
  title: 'x',
  status: 'passed',
  exitCode: 0,
  output: '',
  evidence: '',
  startedAt: '2026-12-06T00:00:00Z',
  durationMs: 1,
  ...over,
});

describe('runbook documents', () => {
  it('parses a valid document', () => {
    const doc = parseRunbook(ok);
    expect(doc.name).toBe('Sample');
    expect(doc.steps.map((s) => s.type)).toEqual(['check', 'fix', 'verify-login']);
  });

  it('names the step and field of every problem', () => {
    expect(problemsOf(ok.replace('for: listening', 'for: nowhere'))).toEqual([
      'steps[1] (start).for: names "nowhere", which is not an earlier check',
    ]);
    expect(problemsOf(ok.replace('type: fix', 'type: reboot'))).toEqual([
      'steps[1] (start).type: unknown step type "reboot": use one of check, fix, verify-login, rotate-credential',
    ]);
    expect(problemsOf(ok.replace('    run: echo start {{mode}}\n', ''))[0]).toMatch(/^steps\[1\] \(start\)\.run: is required/);
    expect(problemsOf(ok.replace('{{mode}}', '{{nosuch}}'))[0]).toMatch(/^steps\[1\] \(start\)\.run: uses \{\{nosuch\}\}/);
    expect(problemsOf(ok.replace('version: 2', 'version: two'))[0]).toMatch(/^version: /);
    expect(problemsOf('name: [unclosed')[0]).toMatch(/YAML/);
    expect(problemsOf(ok.replace('id: login', 'id: listening'))[0]).toMatch(
      /steps\[2\] \(listening\)\.id: "listening" is used by an earlier step/,
    );
  });

  it('resolves inputs: defaults from engine variables, unknown and missing ones refused', () => {
    const doc = parseRunbook(ok);
    expect(resolveInputs(doc, {}, { 'device.sshPort': 2222 })).toEqual({ port: 2222, mode: 'a' });
    expect(() => resolveInputs(doc, { prot: 1 }, {})).toThrow(/no input "prot": its inputs are port, mode/);
    expect(() => resolveInputs(doc, { port: 'x' }, {})).toThrow(/input port must be a whole number/);
    expect(() => resolveInputs(doc, { mode: 'c' }, { 'device.sshPort': 22 })).toThrow(/input mode must be one of a, b/);
  });

  it('quotes substituted values for the shell', () => {
    expect(substitute('echo {{v}}', { v: `it's; rm -rf /` })).toBe(`echo 'it'\\''s; rm -rf /'`);
    expect(shellQuote(22)).toBe(`'22'`);
  });
});

describe('verdicts', () => {
  it('is SUCCESS only when every post-condition was checked and held', () => {
    expect(verdictOf([step({}), step({ type: 'verify-login' })], false)).toBe('SUCCESS');
    expect(verdictOf([step({ status: 'fixed' }), step({ type: 'fix', status: 'ran' }), step({ type: 'verify-login' })], true)).toBe(
      'SUCCESS',
    );
    expect(verdictOf([step({}), step({ type: 'verify-login', status: 'failed' })], true)).toBe('FAILED');
    expect(verdictOf([step({}), step({ type: 'verify-login', status: 'error' })], true)).toBe('CHANGED-BUT-UNVERIFIED');
    expect(verdictOf([step({}), step({ type: 'verify-login', status: 'skipped' })], false)).toBe('FAILED');
    expect(verdictOf([step({ status: 'failed' }), step({ type: 'fix', status: 'would-fix' })], false)).toBe('FAILED');
    expect(verdictOf([], false)).toBe('FAILED');
  });
});

describe('passwords', () => {
  it('has the length and every class, and differs each time', () => {
    const a = generatePassword({ length: 16, classes: ['lower', 'upper', 'digit', 'symbol'] });
    expect(a).toHaveLength(16);
    expect(a).toMatch(/[a-z]/);
    expect(a).toMatch(/[A-Z]/);
    expect(a).toMatch(/[0-9]/);
    expect(a).not.toMatch(/[:'"\\ ]/);
    expect(generatePassword()).not.toBe(generatePassword());
    expect(() => generatePassword({ length: 8, classes: ['lower'] })).toThrow(/12 to 128/);
  });
});
