import { createServer, type Server } from 'node:https';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import Provider from 'oidc-provider';
import selfsigned from 'selfsigned';
import { Agent, fetch } from 'undici';
import { freeLowPort } from '../../bench/host.js';

/** How the test changes the ID token the provider's token endpoint sends (a man in the middle, or a provider gone wrong). */
export type IdTokenChange = (idToken: string, resign: (payload: JWTPayload) => Promise<string>) => Promise<string> | string;

/**
 * A real OpenID provider (`oidc-provider`) on 127.0.0.1 over HTTPS, with a self-signed
 * certificate the test trusts as the CA (`caPem`), one confidential client, accounts whose
 * `groups` claim the test sets, and its development login pages (any password). The ID
 * token's signing key is the test's, so a test can re-sign a token it changed.
 */
export class TestOidcProvider {
  readonly groups = new Map<string, string[]>();
  /** Set to change the next ID tokens the token endpoint sends. */
  changeIdToken: IdTokenChange | null = null;
  readonly clientId = 'gatehouse';
  readonly clientSecret = 'test-client-secret-0123456789abcdef';

  private constructor(
    readonly issuer: string,
    readonly caPem: string,
    private readonly server: Server,
    private readonly signingKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'],
    private readonly dispatcher: Agent,
  ) {}

  static async start(redirectUris: string[]): Promise<TestOidcProvider> {
    const port = await freeLowPort();
    const issuer = `https://127.0.0.1:${port}`;
    const pems = selfsigned.generate([{ name: 'commonName', value: 'gatehouse test identity provider' }], {
      keySize: 2048,
      days: 1,
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: true },
        { name: 'keyUsage', keyCertSign: true, digitalSignature: true, keyEncipherment: true },
        { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
      ],
    });
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk: JWK = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
    const made: { self?: TestOidcProvider } = {};
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: 'gatehouse',
          client_secret: 'test-client-secret-0123456789abcdef',
          redirect_uris: redirectUris,
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      jwks: { keys: [jwk] },
      cookies: { keys: ['gatehouse-test-provider-cookie-key'] },
      claims: { openid: ['sub'], profile: ['preferred_username', 'name'], groups: ['groups'] },
      scopes: ['openid', 'profile', 'groups'],
      pkce: { required: () => true },
      ttl: { IdToken: 600 },
      features: { devInteractions: { enabled: true } },
      findAccount: (_ctx, id) => ({
        accountId: id,
        claims: () => ({ sub: id, preferred_username: id, name: id, groups: made.self?.groups.get(id) ?? [] }),
      }),
    });
    provider.use(async (ctx, next) => {
      await next();
      const body = ctx.body as { id_token?: string } | undefined;
      const self = made.self;
      if (ctx.path === '/token' && self?.changeIdToken && body?.id_token) {
        body.id_token = await self.changeIdToken(body.id_token, (payload) => self.sign(payload));
      }
    });
    const handle = provider.callback();
    const server = createServer({ cert: pems.cert, key: pems.private }, (req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    made.self = new TestOidcProvider(issuer, pems.cert, server, privateKey, new Agent({ connect: { ca: pems.cert } }));
    return made.self;
  }

  /** Signs an ID token with the provider's own key, as it would. */
  sign(payload: JWTPayload): Promise<string> {
    return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: 'test-key' }).sign(this.signingKey);
  }

  /**
   * Follows the sign-in from the authorization URL through the provider's login and
   * consent pages as `login`, as a browser would, and answers where the provider sends
   * the browser back (the client's redirect URI with code and state).
   */
  async signIn(authorizationUrl: string, login: string): Promise<URL> {
    const cookies = new Map<string, string>();
    const send = async (url: string, init: { method?: string; body?: string } = {}) => {
      const res = await fetch(url, {
        method: init.method ?? 'GET',
        redirect: 'manual',
        dispatcher: this.dispatcher,
        headers: {
          cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '),
          ...(init.body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        },
        ...(init.body !== undefined ? { body: init.body } : {}),
      });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const eq = pair!.indexOf('=');
        cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1));
      }
      return res;
    };
    let url = authorizationUrl;
    for (let hop = 0; hop < 20; hop++) {
      if (!url.startsWith(this.issuer)) return new URL(url);
      const res = await send(url);
      if (res.status >= 300 && res.status < 400) {
        url = new URL(res.headers.get('location')!, url).href;
        continue;
      }
      const page = await res.text();
      const action = /action="([^"]+)"/.exec(page)?.[1];
      if (res.status !== 200 || !action) throw new Error(`The provider answered ${res.status} at ${url}: ${page.slice(0, 300)}`);
      const body = page.includes('name="login"')
        ? new URLSearchParams({ prompt: 'login', login, password: 'any' }).toString()
        : new URLSearchParams({ prompt: 'consent' }).toString();
      const posted = await send(new URL(action.replace(/&amp;/g, '&'), url).href, { method: 'POST', body });
      await posted.text();
      url = new URL(posted.headers.get('location')!, url).href;
    }
    throw new Error('The sign-in did not come back after 20 redirects');
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
    await this.dispatcher.close();
  }
}

/** The ID token's claims, unverified (for a test that changes one). */
export const idTokenClaims = (idToken: string) => decodeJwt(idToken);
