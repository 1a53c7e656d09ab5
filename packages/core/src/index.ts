export * from './errors.js';
export * from './roles.js';
export * from './secrets.js';
export * from './inventory.js';
export * from './policy.js';
export * from './gateway-selection.js';
export * from './audit-checkpoint.js';
export * from './maintenance.js';
