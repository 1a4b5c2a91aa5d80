/** Parsing of option values (commander hands them over as strings). */
import { DrkitError } from '../../core/index.js';

/** A decimal integer >= `min`. @throws INVALID_ARGUMENT naming the option */
export function parseInteger(text: string, option: string, min: number): number {
  const value = /^[0-9]{1,15}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new DrkitError('INVALID_ARGUMENT', `${option} must be an integer >= ${min}, not '${text}'`, { data: { option, value: text } });
  }
  return value;
}
