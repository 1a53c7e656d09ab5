import { stat } from 'node:fs/promises';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core';

/** The recordings directory of a data directory. */
export const recordingsDirOf = (dataDir: string) => path.join(dataDir, 'recordings');

/**
 * The file and size of a recording stored as `relative` (a session's `recording`), or
 * undefined when the file is gone. A path that leads outside the directory is an error.
 */
export async function recordingFile(dataDir: string, relative: string): Promise<{ file: string; size: number } | undefined> {
  const root = recordingsDirOf(dataDir);
  const file = path.resolve(root, relative);
  if (!file.startsWith(`${root}${path.sep}`))
    throw new GatehouseError('INTERNAL', 'The recording path is outside the recordings directory.');
  const size = await stat(file).then(
    (s) => s.size,
    () => undefined,
  );
  return size === undefined ? undefined : { file, size };
}
