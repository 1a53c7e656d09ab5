import type { Access } from './services.js';

/*
 * Who may call a route, named once: every route's `config` is one of these (with more
 * options spread beside it where a route needs them). The access hook (auth.ts) enforces
 * it before the body is read, and the role × route test walks the table. An operator's
 * answers are further cut to what their grants name.
 */
const rule = <const A extends Access>(access: A) => ({ access }) as const;

/** No sign-in: health, the set-up check, sign-in itself, the console's files. */
export const everyone = rule('public');
/** Any signed-in user, whatever the role: their own account, tokens and keys. */
export const signedIn = rule('authenticated');
/** Administrators only: every write to the inventory, users, gateways and break glass. */
export const admins = rule(['admin']);
/** Administrators and auditors: oversight, read-only (audit, sessions, gateways, break glass). */
export const auditors = rule(['admin', 'auditor']);
/** Those who connect to devices: administrators and operators (terminal, file browser). */
export const connectors = rule(['admin', 'operator']);
/** Every role: the inventory's read routes (operators see only what their grants name). */
export const staff = rule(['admin', 'operator', 'auditor']);

/** Every preset by name: the role × route test checks that each route uses one. */
export const accessPresets = { everyone, signedIn, admins, auditors, connectors, staff } as const;
