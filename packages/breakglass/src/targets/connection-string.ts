/** The Azure connection-string split lives in the API contract, shared with the console (no Node in it). */
export { normalizeSuffix, parseConnectionString } from '@gatehouse/api/connection-string';
