import { deviceInput, devicePatchFields, writtenAs } from '@gatehouse/core/inventory';
import { z } from 'zod';
import { pageOf, timestamp } from './common.js';

/** Devices in projects (`/devices`); an operator sees those its grants name. */

export const deviceSorts = ['name', '-name', 'provider', 'createdAt', '-createdAt'] as const;
export type DeviceSort = (typeof deviceSorts)[number];

export const deviceListQuery = z.strictObject({
  projectId: z.string().optional(),
  search: z.string().max(200).optional(),
  tag: z.string().max(63).optional(),
  sort: z.enum(deviceSorts).default('name'),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});
export type DeviceListQuery = z.input<typeof deviceListQuery>;

export const deviceCreate = deviceInput;
export type DeviceCreate = z.input<typeof deviceCreate>;

/**
 * Only the fields sent change; protocols and tags replace the lists. `maintenanceRequired`
 * (reachable only inside an open maintenance window) is not part of the inventory file.
 */
export const devicePatch = devicePatchFields.extend({ maintenanceRequired: z.boolean().optional() }).transform(writtenAs);
export type DevicePatch = z.input<typeof devicePatch>;

export const device = z.object({
  id: z.string(),
  projectId: z.string(),
  name: z.string(),
  /** aws, azure, gcp, on-prem or other: what Gatehouse goes by. */
  provider: z.string(),
  /** The provider as the inventory wrote it (`AWS`, `Hetzner`); the export and the break-glass workbook show this. */
  providerAsWritten: z.string(),
  protocols: z.array(z.string()),
  /** The protocols as written (`MySQL`), in the order of `protocols`. */
  protocolsAsWritten: z.array(z.string()),
  publicIp: z.string().nullable(),
  privateIp: z.string().nullable(),
  urlPort: z.string().nullable(),
  accessType: z.string(),
  tags: z.array(z.string()),
  /** The device's own setting; its project's can require windows too (GET /devices/:id/access says which). */
  maintenanceRequired: z.boolean(),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export type Device = z.infer<typeof device>;

export const deviceList = pageOf(device);
export type DeviceList = z.infer<typeof deviceList>;
