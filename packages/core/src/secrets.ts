/** What the API shows in place of a stored secret: a fixed value, the same for every
 * secret, so that a response reveals only whether one is set. */
export const SECRET_MASK = '********';
