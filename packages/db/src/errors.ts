import { ConflictError } from '@gatehouse/core';

/** True when the error is a unique-constraint violation from either database. */
export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: unknown } | null;
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Runs `fn`, turning a unique violation into a ConflictError that names `field`. */
export async function uniquely<T>(field: string, message: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (isUniqueViolation(error)) throw new ConflictError(message, [{ path: field, message: 'is already taken' }]);
    throw error;
  }
}
