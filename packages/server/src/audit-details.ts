import { targetName, type Tx } from '@gatehouse/db';

/** One field a change changed: its value before and after, or `'changed'` for a secret (never its value, nor a mask). */
export type FieldChange = { before: unknown; after: unknown } | 'changed';

/** What a change changed: the names of the fields, and each one's before → after. */
export type FieldChanges = { fields: string[]; changes: Record<string, FieldChange> };

/**
 * What a settings save (or an object's update) changed, field by field: its audit event lists
 * these, not every field the request sent. A field absent on one side reads null there; a
 * field named in `secrets` is recorded as `'changed'`, so its value never reaches the log.
 */
export function fieldChanges(before: object | null | undefined, after: object, secrets: readonly string[] = []): FieldChanges {
  const [b, a] = [{ ...before } as Record<string, unknown>, { ...after } as Record<string, unknown>];
  const changes: Record<string, FieldChange> = {};
  for (const key of [...new Set([...Object.keys(b), ...Object.keys(a)])].sort()) {
    const [was, is] = [b[key] ?? null, a[key] ?? null];
    if (JSON.stringify(was) === JSON.stringify(is)) continue;
    changes[key] = secrets.includes(key) ? 'changed' : { before: was, after: is };
  }
  return { fields: Object.keys(changes), changes };
}

/**
 * The target of an event about an object this transaction deletes, with its name read before
 * the delete (`details.targetName`): the audit list shows that name once the object is gone.
 * Events about objects that remain get their target's name when they are written.
 */
export async function deletedTarget(
  trx: Tx,
  type: string,
  id: string,
): Promise<{ targetType: string; targetId: string; details: { targetName?: string } }> {
  const name = await targetName(trx, type, id);
  return { targetType: type, targetId: id, details: name === undefined ? {} : { targetName: name } };
}
