import type { AuthContext, KeyboardAuthContext } from 'ssh2';
import type { AuthorizedTarget, GatewayUser } from './broker.js';
import { parseConnectionTarget, printableName, type ConnectionTarget } from './connection-target.js';
import type { SshGatewayOptions } from './gateway.js';
import { fingerprintOf, keyTypeOf, verifyUserKeySignature } from './host-key.js';

const AUTH_METHODS: AuthContext['method'][] = ['publickey', 'keyboard-interactive', 'password'];
/** The disconnect reason when the user was told why already. */
export const CLOSED = 'Gatehouse closed the connection.';

/** A signed-in user and the device they may use, or why they may not (told on their first channel). */
export type Admission = { user: GatewayUser; target: AuthorizedTarget } | { user: GatewayUser; refusal: string };

/**
 * The SSH user authentication of one connection: the user name parsed as
 * `<user>:<device>[:<account>]`, the user signed in by key, password or
 * keyboard-interactive (with the TOTP code), then authorized for the device. Whatever
 * cannot be retried closes the connection with its reason (`end`).
 */
export class GatewaySignIn {
  private failures = 0;

  constructor(
    private readonly options: Pick<Required<SshGatewayOptions>, 'broker' | 'logger' | 'maxAuthAttempts'>,
    private readonly remoteAddress: string,
    /** Closes the connection with a reason the client prints. */
    private readonly end: (reason: string) => void,
    /** Called just before the sign-in is accepted. */
    private readonly admitted: (admission: Admission) => void,
  ) {}

  /** Answers one authentication request of the client (every method but the three is refused). */
  async authenticate(ctx: AuthContext): Promise<void> {
    if (ctx.method !== 'keyboard-interactive' && ctx.method !== 'password' && ctx.method !== 'publickey') {
      ctx.reject(AUTH_METHODS);
      return;
    }
    const parsed = parseConnectionTarget(ctx.username);
    if (!parsed.ok) {
      await this.options.broker
        .signInRefused({ username: printableName(ctx.username), reason: parsed.reason, remoteAddress: this.remoteAddress })
        .catch((error: unknown) => this.options.logger.error({ err: error }, 'could not record a refused user name'));
      await this.refuse(ctx, parsed.reason, 'malformed user name');
      return;
    }
    const { target } = parsed;
    if (ctx.method === 'publickey') {
      const blob = ctx.key.data;
      const request = {
        username: target.user,
        fingerprint: fingerprintOf(blob),
        algorithm: keyTypeOf(blob),
        remoteAddress: this.remoteAddress,
      };
      if (!ctx.signature) {
        // The client asks whether this key would do; it signs only if told yes.
        const known = await this.options.broker.authenticateKey({ ...request, signed: false });
        if (known.ok) ctx.accept();
        else ctx.reject(AUTH_METHODS);
        return;
      }
      if (!verifyUserKeySignature(blob, ctx.blob ?? Buffer.alloc(0), ctx.signature, ctx.hashAlgo)) {
        ctx.reject(AUTH_METHODS);
        return;
      }
      const result = await this.options.broker.authenticateKey({ ...request, signed: true });
      if (!result.ok) {
        // Tried keys are not failed sign-ins (clients offer every key they hold): the next method may follow.
        ctx.reject(AUTH_METHODS);
        return;
      }
      await this.admit(ctx, result.user, target);
      return;
    }
    let password: string;
    let totp: string | undefined;
    if (ctx.method === 'password') {
      password = ctx.password;
    } else {
      const [answer] = await prompt(ctx, [{ prompt: 'Password: ', echo: false }]);
      password = answer ?? '';
    }
    if (password === '') {
      // ssh without a terminal or a password source answers the prompt empty: no attempt at all.
      ctx.reject(AUTH_METHODS);
      return;
    }
    let result = await this.options.broker.authenticate({ username: target.user, password, remoteAddress: this.remoteAddress });
    if (!result.ok && result.mfaRequired && ctx.method === 'keyboard-interactive') {
      [totp] = await prompt(ctx, [{ prompt: 'Authenticator code: ', echo: true }]);
      result = await this.options.broker.authenticate({
        username: target.user,
        password,
        totp: totp ?? '',
        remoteAddress: this.remoteAddress,
      });
    }
    if (!result.ok) {
      this.failures++;
      if (this.failures >= this.options.maxAuthAttempts) {
        await this.refuse(ctx, 'Too many failed sign-ins on this connection.', 'too many attempts');
        return;
      }
      if (ctx.method === 'keyboard-interactive' && !result.mfaRequired) {
        await prompt(ctx, [], result.message);
      }
      ctx.reject(AUTH_METHODS);
      return;
    }
    await this.admit(ctx, result.user, target);
  }

  /** A signed-in user: may they use what they asked for? */
  private async admit(ctx: AuthContext, user: GatewayUser, target: ConnectionTarget): Promise<void> {
    const decision = await this.options.broker.authorize(user, target, this.remoteAddress);
    if (!decision.allow && ctx.method === 'keyboard-interactive') {
      await this.refuse(ctx, decision.message, 'not authorized');
      return;
    }
    if (!decision.allow) {
      // These methods have no way to show text: sign in, then say why on the channel.
      this.options.logger.info({ remoteAddress: this.remoteAddress, why: 'not authorized' }, 'SSH gateway refused a connection');
      this.admitted({ user, refusal: decision.message });
      ctx.accept();
      return;
    }
    this.admitted({ user, target: decision.target });
    ctx.accept();
  }

  /**
   * Refuses and closes the connection: trying again cannot help. Keyboard-interactive
   * clients are shown the reason first (OpenSSH prints a prompt's instruction text).
   */
  private async refuse(ctx: AuthContext, message: string, why: string): Promise<void> {
    this.options.logger.info({ remoteAddress: this.remoteAddress, why }, 'SSH gateway refused a connection');
    // Keyboard-interactive clients print the message; others learn it from the disconnect
    // (no failure answer first: the client would ask for the password again meanwhile).
    if (ctx.method === 'keyboard-interactive') await prompt(ctx, [], message);
    this.end(ctx.method === 'keyboard-interactive' ? CLOSED : message);
  }
}

/** Keyboard-interactive prompts as a promise; with no prompts, only shows `instructions`. */
function prompt(ctx: KeyboardAuthContext, prompts: { prompt: string; echo: boolean }[], instructions = ''): Promise<string[]> {
  // No name: OpenSSH prints a prompt's name on a line of its own, above every password prompt.
  return new Promise((resolve) => ctx.prompt(prompts, '', instructions, (answers) => resolve(answers)));
}
