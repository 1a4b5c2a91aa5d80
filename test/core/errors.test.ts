import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortError, DrkitError, ERROR_CODES, isDrkitError, toDrkitError, throwIfAborted } from '../../src/index.js';

describe('DrkitError', () => {
  it('carries code, transient default, data and cause', () => {
    const cause = new Error('disk on fire');
    const err = new DrkitError('IO_ERROR', 'write failed', { cause, data: { byteOffset: 4096 } });
    expect(err.code).toBe('IO_ERROR');
    expect(err.transient).toBe(true);
    expect(err.data).toEqual({ byteOffset: 4096 });
    expect(err.cause).toBe(cause);
    expect(Object.isFrozen(err.data)).toBe(true);
    expect(new DrkitError('IO_ERROR', 'x', { transient: false }).transient).toBe(false);
    expect(isDrkitError(err, 'IO_ERROR')).toBe(true);
    expect(isDrkitError(err, 'CORRUPTION')).toBe(false);
  });

  it('maps fs errors by their system code', () => {
    const enoent = Object.assign(new Error('no such file'), { code: 'ENOENT' });
    const mapped = toDrkitError(enoent, 'IO_ERROR', 'open');
    expect(mapped.code).toBe('NOT_FOUND');
    expect(mapped.cause).toBe(enoent);
    expect(mapped.data).toMatchObject({ sysCode: 'ENOENT' });
    expect(toDrkitError(new Error('?'), 'IO_ERROR', 'x').code).toBe('IO_ERROR');
  });

  it('aborts are AbortError with code ABORTED', () => {
    const ac = new AbortController();
    ac.abort();
    expect(() => throwIfAborted(ac.signal)).toThrow(AbortError);
    try {
      throwIfAborted(ac.signal);
    } catch (e) {
      expect((e as DrkitError).code).toBe('ABORTED');
    }
  });
});

describe('docs/errors.md', () => {
  it('lists exactly the codes of src/core/error-codes.ts, with their transient flag', () => {
    const doc = readFileSync(join(__dirname, '../../docs/errors.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| ([A-Z_]+) \| (yes|no) \|/gm)].map((m) => [m[1], m[2] === 'yes'] as const);
    const documented = Object.fromEntries(rows);
    const expected = Object.fromEntries(Object.entries(ERROR_CODES).map(([code, v]) => [code, v.transient]));
    expect(documented).toEqual(expected);
  });

  it('src/ has no bare `throw new Error(`', () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (path.endsWith('.ts') && readFileSync(path, 'utf8').includes('throw new Error(')) offenders.push(path);
      }
    };
    walk(join(__dirname, '../../src'));
    expect(offenders).toEqual([]);
  });
});
