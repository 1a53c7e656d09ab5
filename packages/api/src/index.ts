/**
 * The HTTP API's contract, one module per resource: request schemas (body, query, params)
 * and response schemas, with their TypeScript types. The server's routes declare them,
 * the console and the CLI import the types. Nothing here does I/O or needs Node.
 */
export * from './accounts.js';
export * from './breakglass.js';
export * from './connection-string.js';
export * from './common.js';
export * from './devices.js';
export * from './health.js';
export * from './inventory.js';
export * from './projects.js';
export * from './ssh-keys.js';
export * from './ssh-entry.js';
export * from './gateways.js';
export * from './sessions.js';
export * from './host-keys.js';
export * from './users.js';
export * from './grants.js';
export * from './tokens.js';
export * from './audit.js';
export * from './auth.js';
export * from './sso.js';
export * from './files.js';
export * from './terminal.js';
export * from './maintenance.js';
export * from './agents.js';
export * from './runbooks.js';
export * from './desktops.js';
