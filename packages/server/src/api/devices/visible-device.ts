import { canSeeDevice, NotFoundError, type Visibility } from '@gatehouse/core';
import type { Device } from '@gatehouse/db';

/** The device, if the caller's grants let it see it; otherwise it answers as one that does not exist. */
export function visibleDevice(v: Visibility, device: Device): Device {
  if (!canSeeDevice(v, device).allow) throw new NotFoundError('Device', device.id);
  return device;
}
