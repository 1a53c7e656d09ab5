import type { RunbookRunView } from '@gatehouse/api';
import type { PolicyRotations } from '@gatehouse/server';

/** What PolicyRotations asks of the runbook engine. */
export type RotationEngine = NonNullable<ConstructorParameters<typeof PolicyRotations>[2]>;
export interface RotationCall {
  request: Parameters<RotationEngine['startRotation']>[0];
  caller: Parameters<RotationEngine['startRotation']>[1];
}

/**
 * A stand-in for `RunbookService.startRotation` that records what it is asked to start and
 * answers run ids `run-1`, `run-2`, … (tests of which rotations the policies start; the
 * engine's own tests run it against OpenSSH).
 */
export function recordingRotationEngine(): { engine: RotationEngine; calls: RotationCall[] } {
  const calls: RotationCall[] = [];
  const engine: RotationEngine = {
    startRotation: (request, caller) => {
      calls.push({ request, caller });
      return Promise.resolve({ id: `run-${calls.length}` } as RunbookRunView);
    },
  };
  return { engine, calls };
}
