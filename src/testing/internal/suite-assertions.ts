/** Assertions the conformance suites share. */
import { isDrkitError } from '../../core/errors.js';
import { vitest } from './vitest-api.js';

/** The error a promise (or a function returning one) rejected with, or undefined if it resolved. */
export async function rejection(p: Promise<unknown> | (() => Promise<unknown>)): Promise<unknown> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err;
  }
  return undefined;
}

/** Asserts `p` rejects with a DrkitError whose code is (one of) `codes`. */
export async function expectCode(p: Promise<unknown> | (() => Promise<unknown>), codes: string | readonly string[], what = ''): Promise<void> {
  const err = await rejection(p);
  const want = typeof codes === 'string' ? [codes] : [...codes];
  const got = isDrkitError(err) ? err.code : `no DrkitError (${String(err)})`;
  vitest().expect(want, `${what ? `${what}: ` : ''}expected rejection with ${want.join(' or ')}, got ${got}`).toContain(got);
}
