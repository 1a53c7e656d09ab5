import { z } from 'zod';
import { username, user } from './users.js';

/** First-run set-up (`/setup`) and sign-in, sign-out, your password and TOTP (`/auth/*`). */

/** A password being checked: empty is no attempt. */
const password = z.string().min(1, 'is required').max(1024);

/** `GET /setup`: whether the first administrator still has to be created. */
export const setupStatus = z.object({ needed: z.boolean() });
export type SetupStatus = z.infer<typeof setupStatus>;

export const setupCreate = z.strictObject({ setupToken: z.string().min(1), username, password });
export type SetupCreate = z.infer<typeof setupCreate>;

export const setupDone = z.object({ user });
export type SetupDone = z.infer<typeof setupDone>;

/** Sign-in takes any name (an unknown one answers as a wrong password does). */
export const signInBody = z.strictObject({ username: z.string().max(256), password, totp: z.string().max(16).optional() });
export type SignInBody = z.infer<typeof signInBody>;

/** `POST /auth/login`: who signed in, and the CSRF token every later write of the session sends. */
export const signedInAnswer = z.object({ user, csrfToken: z.string() });
export type SignedInAnswer = z.infer<typeof signedInAnswer>;

/** `GET /auth/me`: who is calling, how, and the session's CSRF token (null for an API token). */
export const me = z.object({ user, via: z.enum(['session', 'token']), csrfToken: z.string().nullable() });
export type Me = z.infer<typeof me>;

export const okAnswer = z.object({ ok: z.literal(true) });
export type OkAnswer = z.infer<typeof okAnswer>;

export const passwordChange = z.strictObject({ currentPassword: password, newPassword: password });
export type PasswordChange = z.infer<typeof passwordChange>;

/** `POST /auth/password`: how many of your API tokens the change revoked. */
export const passwordChanged = z.object({ ok: z.literal(true), revokedTokens: z.number().int() });
export type PasswordChanged = z.infer<typeof passwordChanged>;

/** `POST /auth/totp/enroll`: the new secret, shown this once, and its otpauth:// URI for a QR code. */
export const totpEnrolment = z.object({ secret: z.string(), uri: z.string() });
export type TotpEnrolment = z.infer<typeof totpEnrolment>;

export const totpConfirm = z.strictObject({ code: z.string().max(16) });
export type TotpConfirm = z.infer<typeof totpConfirm>;
