import { GatehouseError } from '@gatehouse/core/errors';
import { InvalidArgumentError } from 'commander';

/** How the range of a whole-number option reads in a refusal. */
const range = (min: number, max?: number) => (max === undefined ? `of ${min} or more` : `from ${min} to ${max}`);

/** `value` as a whole number from `min` (to `max`), or undefined when it is none (NaN, 1.5, -1, 1e3, out of range). */
function whole(value: string, min: number, max?: number): number | undefined {
  const n = Number(value.trim());
  return /^\d+$/.test(value.trim()) && n >= min && (max === undefined || n <= max) ? n : undefined;
}

/**
 * Commander's parser for an option that takes a whole number from `min` (to `max`): anything else
 * is refused before any request, and commander names the option (`option '--offset <n>' argument 'x' is invalid`).
 */
export const wholeNumberOption =
  (what: string, min: number, max?: number) =>
  (value: string): number => {
    const n = whole(value, min, max);
    if (n === undefined) throw new InvalidArgumentError(`Give ${what}: a whole number ${range(min, max)}.`);
    return n;
  };

/** The same check inside an action, for a value read there: a refusal naming the option. */
export function wholeNumber(option: string, value: string, min = 0, max?: number): number {
  const n = whole(value, min, max);
  if (n === undefined) throw new GatehouseError('BAD_REQUEST', `${option} ${value}: must be a whole number ${range(min, max)}.`);
  return n;
}

/** A page's --limit (1 to the API's `max`) and --offset (0 or more). */
export const pageOptions = (max: number) => ({
  limit: wholeNumberOption('the page size', 1, max),
  offset: wholeNumberOption('the first row to show, counting from 0', 0),
});
