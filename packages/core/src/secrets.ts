/** What the API shows in place of a stored secret: a fixed value, the same for every
 * secret, so that a response reveals only whether one is set. */
export const SECRET_MASK = '********';

/** Shows `SECRET_MASK` when a secret is set, `null` when it is not. */
export function maskSecret(isSet: boolean): string | null {
  return isSet ? SECRET_MASK : null;
}
