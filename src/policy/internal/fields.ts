/**
 * Validation helpers shared by the policy models. Every failure is an INVALID_ARGUMENT
 * DrkitError whose `data.field` names the offending field by path (`schedules[1].at`),
 * so a user editing a large configuration finds the mistake without reading messages.
 * Helpers return fresh values holding only known fields: nothing a caller adds (extra
 * keys, `__proto__`) survives into a frozen model.
 */
import { DrkitError } from '../../core/errors.js';

/** Longest identifier: 128 characters — ids are keys in the MetaStore and on the wire, not payloads. */
export const MAX_ID_CHARS = 128;

/** Longest free text (names, addresses, descriptions): 1024 characters — enough to explain, too small to carry data. */
export const MAX_TEXT_CHARS = 1024;

/** Longest list inside one model (entities of a PD, snapshots of a stage): 100,000 — bounds validation and JSON size. */
export const MAX_LIST_ITEMS = 100_000;

const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** Throws INVALID_ARGUMENT for `field`. */
export function invalid(field: string, problem: string, extra: Record<string, unknown> = {}): never {
  throw new DrkitError('INVALID_ARGUMENT', `${field} ${problem}`, { data: { field, ...extra } });
}

/** Joins a path and a key: `join('a', 'b')` = `a.b`, `join('', 'b')` = `b`. */
export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

/**
 * A plain object whose keys are all in `allowed` (`kind` and `formatVersion` are handled
 * by the callers that know them).
 * @throws INVALID_ARGUMENT
 */
export function object(value: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(field || 'value', 'must be an object');
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) invalid(field || 'value', 'must be a plain object');
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) invalid(join(field, key), 'is not a known field', { allowed: [...allowed] });
  }
  return value as Record<string, unknown>;
}

/** Checks an optional `kind` tag. @throws INVALID_ARGUMENT */
export function kindTag(fields: Record<string, unknown>, field: string, expected: string): void {
  if (fields.kind !== undefined && fields.kind !== expected) invalid(join(field, 'kind'), `must be '${expected}'`, { value: String(fields.kind) });
}

/** A non-empty identifier of at most {@link MAX_ID_CHARS} characters, no control characters. @throws INVALID_ARGUMENT */
export function id(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) invalid(field, 'must be a non-empty string');
  if (value.length > MAX_ID_CHARS) invalid(field, `exceeds ${MAX_ID_CHARS} characters`);
  if (CONTROL_CHARS.test(value)) invalid(field, 'contains control characters');
  return value;
}

/** A string of at most {@link MAX_TEXT_CHARS} characters (empty allowed unless `nonEmpty`). @throws INVALID_ARGUMENT */
export function text(value: unknown, field: string, nonEmpty = false): string {
  if (typeof value !== 'string') invalid(field, 'must be a string');
  if (nonEmpty && value.length === 0) invalid(field, 'must not be empty');
  if (value.length > MAX_TEXT_CHARS) invalid(field, `exceeds ${MAX_TEXT_CHARS} characters`);
  if (CONTROL_CHARS.test(value)) invalid(field, 'contains control characters');
  return value;
}

/** A safe integer in [min, max]. @throws INVALID_ARGUMENT */
export function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    invalid(field, `must be an integer in [${min}, ${max}], got ${String(value)}`, { value: String(value) });
  }
  return value;
}

/** A boolean. @throws INVALID_ARGUMENT */
export function bool(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') invalid(field, 'must be a boolean');
  return value;
}

/** One of `choices`. @throws INVALID_ARGUMENT */
export function oneOf<T extends string>(value: unknown, field: string, choices: readonly T[]): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    invalid(field, `must be one of ${choices.join(', ')}`, { value: String(value), allowed: [...choices] });
  }
  return value as T;
}

/** An array of at most `maxItems`, each mapped through `item`. @throws INVALID_ARGUMENT */
export function list<T>(value: unknown, field: string, item: (v: unknown, f: string) => T, maxItems = MAX_LIST_ITEMS): T[] {
  if (!Array.isArray(value)) invalid(field, 'must be an array');
  if (value.length > maxItems) invalid(field, `has more than ${maxItems} items`, { itemCount: value.length });
  return value.map((v, i) => item(v, join(field, i)));
}

/** Throws INVALID_ARGUMENT naming the second occurrence when `keys` repeats one. */
export function unique(keys: readonly string[], field: string, what: string): void {
  const seen = new Set<string>();
  keys.forEach((key, i) => {
    if (seen.has(key)) invalid(join(field, i), `repeats ${what} '${key}'`, { value: key });
    seen.add(key);
  });
}

/** Freezes `value` and everything reachable from it; returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
