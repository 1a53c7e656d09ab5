/**
 * SSH key exchanges that resist "store now, decrypt later": the post-quantum hybrids. The
 * gateway's ssh2 speaks `mlkem768x25519-sha256`; the others are named so that a session
 * recorded by another SSH implementation (OpenSSH's `sntrup761x25519-sha512`) is shown
 * for what it is.
 */
export function isPostQuantumKex(name: string): boolean {
  return name.startsWith('mlkem') || name.startsWith('sntrup');
}

/** The key exchange a client needs when the gateway requires a post-quantum one. */
export const REQUIRED_PQ_KEX = 'mlkem768x25519-sha256';

/**
 * What a user whose SSH client negotiated `kex` (not post-quantum) is told when the gateway
 * settings require a post-quantum key exchange: what to upgrade to.
 */
export function postQuantumKexRefusal(kex: string): string {
  return (
    `This gateway requires a post-quantum key exchange, and your SSH client negotiated ${kex}. ` +
    `Upgrade to OpenSSH 9.9 or later, or use an SSH client that offers ${REQUIRED_PQ_KEX}.`
  );
}
