import type { InputValue, PasswordPolicy, RunbookDocument, StepResult } from '@gatehouse/core/runbooks';
import type { Device } from '@gatehouse/db';
import type { RunbookDeps } from './deps.js';
import { sshPortOf } from '../gateway/broker.js';
import { runRunbook, type EngineOutcome } from './engine.js';
import type { RunbookGateway } from './gateway-client.js';
import type { OpenConnection } from './privileged-shell.js';
import type { CredentialStore } from './rotate.js';

/** Who started a run: every command goes through the gateway as this user. */
export interface RunActor {
  id: string;
  username: string;
}

/** One device's part of a run, ready to execute. */
export interface ItemPlan {
  runId: string;
  actor: RunActor;
  device: Device;
  projectName: string;
  document: RunbookDocument;
  inputs: Record<string, InputValue>;
  apply: boolean;
  privilegedAccount: string;
  /** The account a new login proves sshd with (verificationAccountOf); default the privileged one. */
  verifyAccount?: string;
  /** The device's accounts with a password or key in the vault, which a login can use. */
  loginAccounts?: string[];
  passwordPolicy?: PasswordPolicy | undefined;
}

/** Connections to the device through the built-in gateway, as the run's user, for this run. */
export function connectionsFor(
  gateway: RunbookGateway,
  plan: Pick<ItemPlan, 'runId' | 'actor' | 'device' | 'projectName'>,
): OpenConnection {
  return (account, how) => gateway.open(plan.actor, `${plan.projectName}/${plan.device.name}:${account}`, { runId: plan.runId, ...how });
}

/** Runs one item's document with the engine, writing its steps as they finish. */
export async function executeItem(services: RunbookDeps, gateway: RunbookGateway, plan: ItemPlan): Promise<EngineOutcome> {
  const { runId, device } = plan;
  let written = Promise.resolve();
  const writeSteps = (steps: StepResult[]) => {
    // In order: a poll never sees an older list after a newer one.
    written = written.then(() => services.runbookRuns.updateItem(runId, device.id, { steps }).then(() => undefined));
    return written;
  };
  const outcome = await runRunbook({
    document: plan.document,
    inputs: plan.inputs,
    device: {
      id: device.id,
      name: device.name,
      projectName: plan.projectName,
      sshPort: sshPortOf(device.urlPort),
      hasAddress: (device.privateIp ?? device.publicIp) !== null,
      ...(plan.loginAccounts ? { loginAccounts: plan.loginAccounts } : {}),
    },
    apply: plan.apply,
    privilegedAccount: plan.privilegedAccount,
    verifyAccount: plan.verifyAccount ?? plan.privilegedAccount,
    open: connectionsFor(gateway, plan),
    credentials: vaultCredentials(services, plan),
    passwordPolicy: plan.passwordPolicy,
    onStep: writeSteps,
  });
  await written;
  return outcome;
}

/** The vault side of a rotation on this device: pending rows, promotion and their audit events. */
export function vaultCredentials(services: RunbookDeps, plan: Pick<ItemPlan, 'runId' | 'actor' | 'device'>): CredentialStore {
  const { runId, actor, device } = plan;
  const event = (accountId: string, username: string) => ({
    actorId: actor.id,
    actorName: actor.username,
    targetType: 'account',
    targetId: accountId,
    details: { runbookRun: runId, device: device.name, deviceId: device.id, account: username },
  });
  return {
    async account(username) {
      const account = (await services.inventory.accounts.list(device.id)).find((a) => a.username === username);
      if (!account) return undefined;
      const secrets = await services.inventory.accounts.reveal(account.id);
      return { id: account.id, username, password: secrets.password, privateKey: secrets.privateKey, passphrase: secrets.passphrase };
    },
    async storePending(accountId, credential) {
      return (await services.accountCredentials.addPending(accountId, credential, runId)).id;
    },
    async promote(credentialId) {
      return services.withAudit(null, async (tx, audit) => {
        const { account, previous } = await tx.accountCredentials.promote(credentialId);
        const e = event(account.id, account.username);
        audit({ ...e, action: 'account.rotated', outcome: 'success', details: { ...e.details, previousCredential: previous?.id ?? null } });
        return { previousId: previous?.id ?? null };
      });
    },
    async discard(credentialId) {
      await services.accountCredentials.discard(credentialId);
    },
    async keepUnverified(credentialId) {
      await services.accountCredentials.markUnverified(credentialId);
    },
    async rotationFailed(account, reason, credentialId) {
      const e = event(account.id, account.username);
      await services.audit(null, {
        ...e,
        action: 'account.rotation_failed',
        outcome: 'failure',
        details: { ...e.details, reason, unverifiedCredential: credentialId },
      });
    },
  };
}
