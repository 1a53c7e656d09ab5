import { responses, sshEntry, type SshEntryDevice } from '@gatehouse/api';
import { ConflictError } from '@gatehouse/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { staff } from '../../access.js';
import { caller } from '../../auth.js';
import { usableAccounts } from '../../gateway/broker.js';
import type { GatewayService } from '../../gateway/service.js';
import type { Services } from '../../services.js';

/** Devices read per page while listing every device a user may use. */
const PAGE = 500;

/**
 * The built-in gateway's SSH entry for the caller: port, host key and the devices they may
 * use with their accounts (`gatehouse ssh`, `gatehouse config ssh`). Auditors connect to
 * nothing: their list is empty.
 */
export function sshEntryRoutes(app: FastifyInstance, services: Services, gateways: GatewayService) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { inventory } = services;

  r.get(
    '/ssh-entry',
    {
      config: staff,
      schema: {
        tags: ['gateways'],
        summary: "The built-in SSH gateway's port and host key, and the devices you may use through it",
        response: responses({ 200: sshEntry }),
      },
    },
    async (req) => {
      const builtIn = gateways.builtIn;
      if (!builtIn) throw new ConflictError('The built-in SSH gateway is off. Start the server with --gateway-port (7993 by default).');
      const port = Number(builtIn.address.slice(builtIn.address.lastIndexOf(':') + 1));
      const { user, visibility } = caller(req);
      const devices: SshEntryDevice[] = [];
      if (user.role !== 'auditor') {
        const projects = new Map((await inventory.projects.list()).map((p) => [p.id, p.name]));
        const seen = new Map<string, number>();
        for (let offset = 0; ; offset += PAGE) {
          const page = await inventory.devices.list({ visibility, limit: PAGE, offset });
          for (const device of page.items) {
            if (!device.protocols.some((p) => p === 'ssh' || p === 'sftp')) continue;
            const accounts = await usableAccounts(inventory, visibility, device);
            if (accounts.length === 0) continue;
            seen.set(device.name, (seen.get(device.name) ?? 0) + 1);
            const project = projects.get(device.projectId) ?? device.projectId;
            devices.push({ id: device.id, project, name: device.name, nameShared: false, accounts: accounts.map((a) => a.username) });
          }
          if (page.items.length < PAGE) break;
        }
        for (const d of devices) d.nameShared = (seen.get(d.name) ?? 0) > 1;
        devices.sort((a, b) => a.name.localeCompare(b.name) || a.project.localeCompare(b.project));
      }
      return { port, hostKey: builtIn.hostKey, fingerprint: builtIn.hostKeyFingerprint, devices };
    },
  );
}
