import { z } from 'zod';

/**
 * The built-in gateway's SSH entry as a client needs it (`GET /ssh-entry`): its port and
 * host key, and the devices the caller may use through it with their accounts, for
 * `gatehouse ssh` and `gatehouse config ssh`.
 */
export const sshEntryDevice = z.object({
  id: z.string(),
  project: z.string(),
  name: z.string(),
  /** Whether another project has a device of the same name (the user name must then name the project). */
  nameShared: z.boolean(),
  /** The accounts the caller may use, by user name on the device. */
  accounts: z.array(z.string()),
});
export type SshEntryDevice = z.infer<typeof sshEntryDevice>;

export const sshEntry = z.object({
  /** The port the built-in gateway listens on; its host is the server's. */
  port: z.number().int(),
  /** The gateway's host key, one OpenSSH public key line (`ssh-ed25519 AAAA… gatehouse-gateway`). */
  hostKey: z.string(),
  fingerprint: z.string(),
  /** Devices with SSH or SFTP the caller may use, by project and name. */
  devices: z.array(sshEntryDevice),
});
export type SshEntry = z.infer<typeof sshEntry>;
