/**
 * The process settings the `drkit` command runs with, written into its first line (the
 * shebang of dist/cli.js, see tsup.config.ts), so they apply from the process's start
 * without a parent process in between:
 *
 *     #!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=4
 *
 * Why (measured on the standard 1 GiB workload, docs/benchmarks.md, "Memory: receive
 * buffers and import buffers reused" and "the drkit command's process settings"):
 * - `MALLOC_MMAP_THRESHOLD_=131072`: glibc serves every allocation of 128 KiB or more with
 *   its own mapping, returned to the system when freed. Left dynamic, the threshold rises
 *   after the first large free and buffers land in a brk heap that the garbage collector
 *   fragments.
 * - `--max-semi-space-size=4` (MiB): V8's young generation stays small. A streaming
 *   process allocates short-lived objects per message, and a 16 MiB semi-space holds
 *   tens of MiB of them between scavenges.
 * Together they took the restoring process from ~142 to 111-116 MiB peak RSS at the same
 * CPU. They belong to a process, not to a library: an embedder sets them on its own node.
 *
 * `env -S` is GNU coreutils 8.30+, BSD/macOS env, and npm's Windows shims (cmd-shim reads
 * `env -S VAR=value prog args`). `node dist/cli.js` runs without them.
 */

/** Environment the command's process starts with. */
export const DRKIT_PROCESS_ENV: Readonly<Record<string, string>> = Object.freeze({ MALLOC_MMAP_THRESHOLD_: '131072' });

/** Node options the command's process starts with. */
export const DRKIT_NODE_OPTIONS: readonly string[] = Object.freeze(['--max-semi-space-size=4']);

/** The first line of dist/cli.js: runs node with {@link DRKIT_PROCESS_ENV} and {@link DRKIT_NODE_OPTIONS}. */
export function drkitShebang(): string {
  const env = Object.entries(DRKIT_PROCESS_ENV).map(([k, v]) => `${k}=${v}`);
  return `#!/usr/bin/env -S ${[...env, 'node', ...DRKIT_NODE_OPTIONS].join(' ')}`;
}

/** Whether this process runs with the command's settings (what `drkit --json` reports at startup, and tests read). */
export function processSettingsInEffect(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): boolean {
  return Object.entries(DRKIT_PROCESS_ENV).every(([k, v]) => env[k] === v) && DRKIT_NODE_OPTIONS.every((o) => execArgv.includes(o));
}
