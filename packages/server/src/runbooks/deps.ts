import type { Services } from '../services.js';

/** What the runbook service uses of the server's services (it is one of them). */
export type RunbookDeps = Omit<Services, 'runbooks'>;
