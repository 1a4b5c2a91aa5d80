/** A migration target in its own Node process (fixtures/migrate-target-process.mjs), shared by the cross-process migrate tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TcpTransport } from '../../dist/adapters/node.js';
import type { RemoteSite } from '../../dist/replication/index.js';
import { TEST_PSK } from './fixtures/durable-site.mjs';

/** The target process, as the test sees it. */
export interface TargetProcess {
  readonly remote: RemoteSite;
  /** The target's own status of `lineage`, and the SHA-256 of its writable volume's bytes. */
  status(lineage: string): Promise<{ generation: number; writableVolumeId: string | null; sha256: string | null }>;
  /** SIGKILL, and wait for the exit. */
  crash(): Promise<void>;
  /** How the process ended (waits for it): `SIGKILL` when it crashed itself or was crashed. */
  exited(): Promise<NodeJS.Signals | null>;
}

/**
 * Starts site `siteId` over the durable stores under `dir` in a child process; `cleanups` gets its kill.
 * `crashMode` makes it kill itself in the middle of a group promotion (see the fixture).
 */
export async function startTargetProcess(dir: string, siteId: string, cleanups: (() => Promise<void> | void)[], crashMode?: 'crash-before-promote-commit' | 'crash-after-promote-commit'): Promise<TargetProcess> {
  const args = [join(__dirname, 'fixtures/migrate-target-process.mjs'), siteId, dir, ...(crashMode === undefined ? [] : [crashMode])];
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const crash = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  cleanups.push(crash);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await lines.next();
    if (line.done === true) throw new Error('the target process exited');
    return JSON.parse(line.value as string);
  };
  const ready = (await next()) as { address: string };
  return {
    remote: { siteId, address: ready.address, transport: TcpTransport.create(), psk: TEST_PSK },
    async status(lineage) {
      child.stdin!.write(`status ${lineage}\n`);
      return next();
    },
    crash,
    async exited() {
      await exited;
      return child.signalCode;
    },
  };
}
