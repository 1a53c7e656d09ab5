import { Command, CommanderError } from 'commander';
import { agentCommand, agentsCommands } from './agents.js';
import { auditCommands } from './audit.js';
import { breakGlassCommands } from './breakglass.js';
import { ApiError } from './client.js';
import { desktopCommands } from './desktops.js';
import { gatewayCommand, gatewaysCommands } from './gateways.js';
import { hostKeyCommands } from './host-keys.js';
import { accountsCommands, devicesCommands, exportCommand, importCommand, projectsCommands } from './inventory.js';
import { maintenanceCommands, requestsCommands } from './requests.js';
import { rotationCommands } from './rotation-policy.js';
import { accountRotateCommand, breakGlassRotateCommand, runbookCommandGroups } from './runbooks.js';
import { rdpCommand } from './rdp.js';
import { serverCommand } from './server.js';
import { sessionsCommands } from './sessions.js';
import { signInCommands } from './sign-in.js';
import { sshCommands } from './ssh.js';
import { ssoCommands } from './sso.js';
import { sshKeysCommands, tokensCommands, usersCommands } from './users.js';
import { useOutputFormat } from './output.js';
import { vaultCommands } from './vault.js';

export { enrollAgent, type EnrollOptions } from './agents.js';
export type { AgentState } from './agent/state.js';

/** The `gatehouse` program: one function per command group, in the order `--help` lists them. */
export function buildProgram(): Command {
  const program = new Command('gatehouse')
    .description('Gatehouse privileged access platform')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride()
    // One output format per run, from the options of the command that runs.
    .hook('preAction', (_program, action) => useOutputFormat(action.opts()));

  serverCommand(program);
  signInCommands(program);
  gatewayCommand(program);
  gatewaysCommands(program);
  agentCommand(program);
  agentsCommands(program);
  projectsCommands(program);
  hostKeyCommands(devicesCommands(program));
  accountRotateCommand(accountsCommands(program));
  usersCommands(program);
  ssoCommands(program);
  sessionsCommands(program);
  desktopCommands(program);
  rdpCommand(program);
  requestsCommands(program);
  maintenanceCommands(program);
  sshKeysCommands(program);
  tokensCommands(program);
  sshCommands(program);
  importCommand(program);
  exportCommand(program);
  auditCommands(program);
  breakGlassRotateCommand(breakGlassCommands(program));
  runbookCommandGroups(program);
  rotationCommands(program);
  vaultCommands(program);
  return program;
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  process.exitCode = 0;
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof ApiError) {
      process.stderr.write(`gatehouse: ${error.message}\n`);
      // Every problem, not the first few: an import is fixed in one pass only if all its bad rows are named.
      process.stderr.write(error.issues.map((issue) => `  - ${issue.path}: ${issue.message}\n`).join(''));
      return 1;
    }
    process.stderr.write(`gatehouse: ${(error as Error).message}\n`);
    return 1;
  }
  return Number(process.exitCode ?? 0);
}
