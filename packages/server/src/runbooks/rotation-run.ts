import type { ItemVerdict, PasswordPolicy, RunbookDocument, StepResult } from '@gatehouse/core/runbooks';
import type { Device, RotatedAccount } from '@gatehouse/db';
import type { RunbookDeps } from './deps.js';
import type { EngineOutcome } from './engine.js';
import type { RunbookGateway } from './gateway-client.js';
import { connectionsFor, executeItem, type RunActor } from './item-runner.js';
import { verifyLogin } from './privileged-shell.js';

export interface RotationItemPlan {
  runId: string;
  actor: RunActor;
  device: Device;
  projectName: string;
  /** In the order they are rotated (the privileged account last). */
  accounts: { id: string; username: string }[];
  apply: boolean;
  privilegedAccount: string;
  policy: PasswordPolicy;
  /** password, key, or null: the kind each account has (a key when it has a private key and no password). */
  credential: 'password' | 'key' | null;
  /** After the attempt, log in with each credential as the export held it (rotation after break glass). */
  checkFileCredentials: boolean;
}

/** ResetAccess's rotate step for each account, in order: the document a rotation item runs. */
export function rotationDocument(accounts: { username: string }[], credential: 'password' | 'key' | null): RunbookDocument {
  return {
    name: 'ResetAccess',
    version: 1,
    steps: accounts.map((a, i) => ({
      id: `rotate-${i + 1}`,
      type: 'rotate-credential' as const,
      title: `rotate the credential of ${a.username}`,
      account: a.username,
      ...(credential ? { credential } : {}),
    })),
  };
}

/**
 * One device of a rotation run: each account rotated (or, in a dry run, said it would be)
 * through the engine, then, after a break-glass export, whether the credential as the file
 * held it still logs in: the previous one after a rotation, the current one otherwise.
 */
export async function rotateAccounts(
  services: RunbookDeps,
  gateway: RunbookGateway,
  plan: RotationItemPlan,
): Promise<{ verdict: ItemVerdict; accounts: RotatedAccount[] }> {
  if (plan.accounts.length === 0) return { verdict: 'SKIPPED', accounts: [] };
  const outcome = await executeItem(services, gateway, {
    runId: plan.runId,
    actor: plan.actor,
    device: plan.device,
    projectName: plan.projectName,
    document: rotationDocument(plan.accounts, plan.credential),
    inputs: {},
    apply: plan.apply,
    privilegedAccount: plan.privilegedAccount,
    passwordPolicy: plan.policy,
  });
  const open = connectionsFor(gateway, plan);
  const hasAddress = (plan.device.privateIp ?? plan.device.publicIp) !== null;
  const accounts: RotatedAccount[] = [];
  for (const [i, account] of plan.accounts.entries()) {
    const step = outcome.steps.find((s) => s.id === `rotate-${i + 1}`);
    const rotation = outcome.rotations.find((r) => r.username === account.username);
    const entry = accountResult(account, step, rotation, outcome);
    if (plan.checkFileCredentials && hasAddress) {
      const fileCredential = entry.result === 'rotated' ? (rotation?.previousId ?? null) : null;
      // Rotated without a previous row: the file held no credential Gatehouse kept.
      if (entry.result !== 'rotated' || fileCredential !== null) {
        entry.fileCredentialWorks = (await verifyLogin(open, account.username, fileCredential)).ok;
      }
    }
    accounts.push(entry);
  }
  return { verdict: rotationVerdict(outcome, accounts, plan.apply), accounts };
}

function accountResult(
  account: { id: string; username: string },
  step: StepResult | undefined,
  rotation: EngineOutcome['rotations'][number] | undefined,
  outcome: EngineOutcome,
): RotatedAccount {
  const base = { accountId: account.id, username: account.username, fileCredentialWorks: null };
  if (rotation) return { ...base, result: rotation.result, reason: rotation.reason };
  if (step?.status === 'would-rotate') return { ...base, result: 'would-rotate', reason: null };
  const privileged = outcome.steps.find((s) => s.id === 'privileged');
  const why = privileged && privileged.status !== 'passed' ? privileged.evidence : (step?.evidence ?? 'not attempted');
  return { ...base, result: 'failed', reason: why };
}

/** SUCCESS when every account was rotated and verified; a dry run, or any failure, is FAILED. */
function rotationVerdict(outcome: EngineOutcome, accounts: RotatedAccount[], apply: boolean): ItemVerdict {
  if (!apply || !accounts.every((a) => a.result === 'rotated')) return 'FAILED';
  // Every account's new credential logged in: the rotate step verifies, nothing is left unchecked.
  return outcome.changed ? 'SUCCESS' : 'FAILED';
}
