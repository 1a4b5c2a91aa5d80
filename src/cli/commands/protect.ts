/**
 * `drkit protect POLICY.json`: runs the Protector engine over this site: the policy file's
 * protection domains, snapshotted on their schedules, replicated to their remote sites,
 * pruned by their retention, until SIGINT/SIGTERM (or, with --once, one snapshot of every
 * domain, replicated, then exit). The engine keeps its state in the site, so a restart
 * fires a missed schedule once.
 *
 * Policy file: { "formatVersion": 1, "domains": [ <protection-domain>, ... ] } (domains as
 * `toPolicyJSON` writes them; their `kind` and `formatVersion` may be left out). Each
 * domain's `remoteSites` say where a site is (`address`, `HOST:PORT`), through which relay
 * (`options.proxyAddress`) and at what bandwidth; the credential flags are the
 * credentials every `credentialsRef` resolves to. See docs/cli.md.
 */
import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { SystemClock } from '../../adapters/index.js';
import { DrkitError, toDrkitError } from '../../core/index.js';
import { POLICY_FORMAT_VERSION, Protector, fromPolicyJSON, type ProtectionDomain, type ProtectorEvent } from '../../policy/index.js';
import { CliContext } from '../internal/context.js';
import { connectionOf, loadCredentials, withCredentialOptions, type CredentialFlags } from '../internal/remote.js';
import { nextShutdownSignal } from '../internal/signals.js';

/** Largest policy file read: a few hundred domains fit in far less. */
const MAX_POLICY_FILE_BYTES = 4 * 1024 * 1024;

export function registerProtect(program: Command): void {
  withCredentialOptions(
    program
      .command('protect')
      .description('run the protection engine from a policy file until SIGINT/SIGTERM (schedules, replication, retention, RPO)')
      .argument('<policy>', 'policy JSON file: { formatVersion, remotes, domains }')
      .option('--once', 'take one snapshot of every domain now, replicate it, and exit'),
  ).action(async (file: string, opts: CredentialFlags & { once?: boolean }, command: Command) => {
    const ctx = new CliContext(command.optsWithGlobals());
    const policy = await readPolicy(file);
    const needsRemotes = policy.domains.some((d) => d.schedules.some((s) => s.remoteSiteIds.length > 0));
    const credentials = needsRemotes ? await loadCredentials(opts) : undefined;
    const shutdown = opts.once === true ? undefined : nextShutdownSignal();
    await ctx.withSite(async ({ site, meta }) => {
      const failures: ProtectorEvent[] = [];
      const protector = await Protector.open({
        site,
        meta,
        clock: new SystemClock(),
        connectionFor: () => connectionOf(credentials!),
        onEvent: (e) => {
          if (e.kind.endsWith('-failed')) failures.push(e);
          ctx.out.emit('event', eventFields(e), `${new Date(e.atMs).toISOString()}  ${e.kind.padEnd(20)} ${e.domainId}${'siteId' in e && e.siteId !== undefined ? ` -> ${e.siteId}` : ''}${'error' in e ? `: ${e.error.code} ${e.error.message}` : ''}`);
        },
      });
      try {
        for (const d of policy.domains) await protector.addDomain(d);
        if (opts.once === true) {
          for (const d of policy.domains) await protector.snapshotNow(d.id, { replicate: true });
          await protector.whenIdle();
        } else {
          protector.start();
          ctx.out.note(`protecting ${policy.domains.length} domains; SIGINT or SIGTERM stops`);
          ctx.out.note(`${await shutdown!}: stopping`);
        }
      } finally {
        await protector.close();
      }
      ctx.out.emit('result', { command: 'protect', domains: policy.domains.map((d) => d.id), failures: failures.length }, `protect: ${policy.domains.length} domains, ${failures.length} failures`);
      if (opts.once === true && failures.length > 0) {
        const first = failures[0] as ProtectorEvent & { error?: DrkitError };
        throw first.error ?? new DrkitError('INTERNAL', `${first.kind} without an error`);
      }
    });
  });
}

/** An event as JSON: errors as code and message. */
function eventFields(e: ProtectorEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { ...e };
  if ('error' in e) out.error = { code: e.error.code, message: e.error.message };
  return out;
}

/** Reads and validates the policy file. @throws INVALID_ARGUMENT, FORMAT_VERSION, NOT_FOUND */
async function readPolicy(file: string): Promise<{ domains: ProtectionDomain[] }> {
  const stat = await fs.stat(file).catch((err: unknown) => {
    throw toDrkitError(err, 'IO_ERROR', `cannot read ${file}`, { path: file });
  });
  if (stat.size > MAX_POLICY_FILE_BYTES) throw new DrkitError('INVALID_ARGUMENT', `${file} is larger than ${MAX_POLICY_FILE_BYTES} bytes`, { data: { path: file } });
  let value: unknown;
  try {
    value = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new DrkitError('INVALID_ARGUMENT', `${file} does not parse as JSON`, { cause: err, data: { path: file } });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DrkitError('INVALID_ARGUMENT', `${file} must hold a JSON object`, { data: { path: file } });
  const { formatVersion, domains, ...rest } = value as Record<string, unknown>;
  if (formatVersion !== POLICY_FORMAT_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `${file}: formatVersion ${String(formatVersion)} is not readable by this build (reads ${POLICY_FORMAT_VERSION})`, { data: { path: file } });
  }
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    // `remotes` was a second table of addresses; a domain's remoteSites say it once.
    throw new DrkitError('INVALID_ARGUMENT', `${file}: unknown field '${unknown[0]}' (a remote site's address is its remoteSites entry's \`address\`)`, { data: { path: file, field: unknown[0] } });
  }
  if (!Array.isArray(domains) || domains.length === 0) throw new DrkitError('INVALID_ARGUMENT', `${file}: domains must be a non-empty array`, { data: { path: file, field: 'domains' } });
  const parsed = domains.map((d: unknown) => fromPolicyJSON(JSON.stringify({ formatVersion: POLICY_FORMAT_VERSION, kind: 'protection-domain', ...(d as object) }), 'protection-domain'));
  return { domains: parsed };
}
