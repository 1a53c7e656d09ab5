import { projectInput } from '@gatehouse/core/inventory';
import { z } from 'zod';
import { listOf, timestamp } from './common.js';

/** Projects group devices; an operator's grant can name a whole project (`/projects`). */

export const projectCreate = projectInput;
export type ProjectCreate = z.input<typeof projectCreate>;

/** Only the fields sent change; `maintenanceRequired` (every device only inside an open maintenance window) is not in the inventory file. */
export const projectPatch = projectInput.partial().extend({ maintenanceRequired: z.boolean().optional() });
export type ProjectPatch = z.input<typeof projectPatch>;

export const project = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  maintenanceRequired: z.boolean(),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export type Project = z.infer<typeof project>;

export const projectList = listOf(project);
export type ProjectList = z.infer<typeof projectList>;
