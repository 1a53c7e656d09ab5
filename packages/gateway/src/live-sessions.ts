import type { LiveSessions } from './management.js';

/**
 * One gateway's live sessions held by several parts (its SSH entry, its desktops): ending
 * or warning a session asks each part in turn until one holds it.
 */
export function combineLiveSessions(...parts: LiveSessions[]): LiveSessions {
  return {
    async endSession(id, reason) {
      for (const part of parts) if (await part.endSession(id, reason)) return true;
      return false;
    },
    async warnSession(id, text) {
      for (const part of parts) if (await part.warnSession(id, text)) return true;
      return false;
    },
  };
}
