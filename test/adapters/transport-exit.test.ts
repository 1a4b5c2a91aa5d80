// A process that closed and destroyed a TCP connection in the same tick must still exit
// by itself. Node refuses to reset a socket whose shutdown is pending (EINVAL) and then
// drops it without closing its handle: the process spun at 100% CPU in its exit cleanup
// (seen after a Metro planned swap). Runs the BUILT package in a child (npm test builds first).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const childScript = join(__dirname, 'fixtures', 'close-then-destroy-child.mjs');
/** Far above the ~0.2 s the child needs; a leaked handle never exits at all. */
const EXIT_DEADLINE_MS = 15_000;

describe('SocketConnection teardown', () => {
  it('a connection closed then destroyed in the same tick lets the process exit', async () => {
    const outcome = await new Promise<{ code: number | null; stdout: string; stderr: string; hung: boolean }>((resolve, reject) => {
      const child = spawn(process.execPath, [childScript], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      let hung = false;
      const deadline = setTimeout(() => {
        hung = true;
        child.kill('SIGKILL');
      }, EXIT_DEADLINE_MS);
      child.on('error', reject);
      child.on('exit', (code) => {
        clearTimeout(deadline);
        resolve({ code, stdout, stderr, hung });
      });
    });
    expect(outcome.stderr).toBe('');
    expect(outcome.stdout.trim()).toBe('done');
    expect(outcome.hung).toBe(false);
    expect(outcome.code).toBe(0);
  }, 30_000);
});
