// The BUILT `drkit` command (dist/cli.js, `npm test` builds it) run as a child process on
// temp directories, the way a user or a script runs it: exit codes, --json lines, the
// backup/restore cycle, serve + replicate + list --remote + restore --from, and a clean
// shutdown of serve on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeededPrng } from '../../src/testing/core.js';

const cli = resolve(__dirname, '../../dist/cli.js');
const tls = resolve(__dirname, '../fixtures/tls');
const root = fs.mkdtempSync(join(tmpdir(), 'drkit-cli-'));
const MiB = 1024 * 1024;
const IMAGE_BYTES = 4 * MiB;
const children: ChildProcess[] = [];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `drkit ...args` to completion. */
function drkit(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: root, env: { ...process.env, ...env, DRKIT_SITE: env.DRKIT_SITE ?? '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** The JSON lines of a --json run. */
const lines = (r: Run): Record<string, unknown>[] => r.stdout.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

/** Starts `drkit serve` and resolves once it listens, with its address. */
function serve(
  args: readonly string[],
  how: { asExecutable?: boolean } = {},
): Promise<{ child: ChildProcess; remote: string; address: string; exited: Promise<Run>; fields: Record<string, unknown> }> {
  return new Promise((ready, fail) => {
    // As a user runs it (the file itself, through its first line), or as `node dist/cli.js`.
    const child = how.asExecutable
      ? spawn(cli, ['--json', ...args], { cwd: root, env: { ...process.env, DRKIT_SITE: '' } })
      : spawn(process.execPath, [cli, '--json', ...args], { cwd: root, env: { ...process.env, DRKIT_SITE: '' } });
    children.push(child);
    let stdout = '';
    let stderr = '';
    const exited = new Promise<Run>((done) => child.on('close', (code) => done({ code, stdout, stderr })));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const listening = stdout.split('\n').find((l) => l.includes('"listening"'));
      if (listening === undefined) return;
      const fields = JSON.parse(listening) as { remote: string; address: string };
      ready({ child, remote: fields.remote, address: fields.address, exited, fields });
    });
    void exited.then((r) => fail(new Error(`serve exited early (${r.code}): ${r.stderr}${r.stdout}`)));
  });
}

/** A disk-like image: random, zero and repeated 64 KiB regions, from a seed. */
function makeImage(path: string, seed: number, byteLength = IMAGE_BYTES): Buffer {
  const rng = new SeededPrng(seed);
  const out = Buffer.alloc(byteLength);
  const repeated = rng.fill(new Uint8Array(64 * 1024));
  for (let at = 0; at < byteLength; at += 64 * 1024) {
    const kind = rng.below(3);
    if (kind === 0) out.set(rng.fill(new Uint8Array(64 * 1024)), at);
    if (kind === 1) out.set(repeated, at);
  }
  fs.writeFileSync(path, out);
  return out;
}

let n = 0;
const fresh = (name: string): string => join(root, `${name}-${n++}`);
let psk = '';

beforeAll(() => {
  if (!fs.existsSync(cli)) throw new Error('dist/cli.js missing: run `npm run build` first (npm test does)');
  psk = join(root, 'psk.hex');
  fs.writeFileSync(psk, `${Buffer.from(new SeededPrng(99).fill(new Uint8Array(32))).toString('hex')}\n`);
});
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
});

describe('drkit CLI', () => {
  it('init, import, snapshot, list --json, restore --to: the restored file has the image\'s bytes', async () => {
    const site = fresh('site');
    const image = join(root, 'disk.img');
    const bytes = makeImage(image, 1);
    expect((await drkit(['init', site, '--site-id', 'alpha', '--write-log-mib', '8'])).code).toBe(0);
    const imported = await drkit(['--json', '--site', site, 'import', image, '--volume', 'disk']);
    expect(imported.code).toBe(0);
    const events = lines(imported);
    expect(events.at(-1)).toMatchObject({ type: 'result', command: 'import', volumeName: 'disk', byteLength: IMAGE_BYTES });
    expect(events.filter((e) => e.type === 'progress').at(-1)).toMatchObject({ phase: 'done', completedBytes: IMAGE_BYTES, totalBytes: IMAGE_BYTES });
    expect((await drkit(['snapshot', 'disk', '--name', 'monday'], { DRKIT_SITE: site })).code).toBe(0);
    const listed = lines(await drkit(['--site', site, '--json', 'list']));
    expect(listed.filter((e) => e.type === 'volume').map((e) => e.name)).toEqual(['disk']);
    const snaps = listed.filter((e) => e.type === 'snapshot');
    expect(snaps).toMatchObject([{ name: 'monday', byteLength: IMAGE_BYTES }]);
    const out = join(root, 'restored.img');
    const restored = await drkit(['--site', site, 'restore', 'monday', '--to', out]);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain('restored');
    expect(Buffer.compare(fs.readFileSync(out), bytes)).toBe(0);
    // The volume changes, a second snapshot differs from the first, and restore in place brings it back.
    makeImage(image, 2);
    expect((await drkit(['--site', site, 'import', image, '--volume', 'disk'])).code).toBe(0);
    expect((await drkit(['--site', site, 'snapshot', 'disk', '--name', 'tuesday'])).code).toBe(0);
    const diff = lines(await drkit(['--site', site, '--json', 'diff', 'monday', 'tuesday']));
    expect(diff.at(-1)).toMatchObject({ type: 'result', command: 'diff' });
    expect(diff.at(-1)!.changedBytes as number).toBeGreaterThan(0);
    expect((await drkit(['--site', site, 'restore', 'monday'])).code).toBe(0);
    const exported = join(root, 'exported.img');
    expect((await drkit(['--site', site, 'export', 'disk', exported])).code).toBe(0);
    expect(Buffer.compare(fs.readFileSync(exported), bytes)).toBe(0);
    const shorter = join(root, 'shorter.img');
    makeImage(shorter, 3, MiB);
    const mismatch = await drkit(['--site', site, 'import', shorter, '--volume', 'disk']);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toContain('volume disk holds 4194304 bytes, the image 1048576');
    const cloned = lines(await drkit(['--site', site, '--json', 'clone', 'tuesday', '--name', 'tue-copy']));
    expect(cloned.at(-1)).toMatchObject({ type: 'result', command: 'clone', volume: { name: 'tue-copy' } });
    const verify = await drkit(['--site', site, 'verify', '--data']);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain('no problems');
  });

  it('bad usage exits 2 with a message; a missing site exits 3; coded errors print their code and a hint', async () => {
    const noCommand = await drkit(['frobnicate']);
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toContain("unknown command 'frobnicate'");
    const missingOption = await drkit(['--site', root, 'snapshot', 'disk']);
    expect(missingOption.code).toBe(2);
    expect(missingOption.stderr).toContain("required option '--name <name>'");
    const jsonUsage = await drkit(['--json', 'snapshot', 'disk']);
    expect(jsonUsage.code).toBe(2);
    expect(lines(jsonUsage)).toMatchObject([{ type: 'error', code: 'INVALID_ARGUMENT', exitCode: 2 }]);
    const noSite = await drkit(['list']);
    expect(noSite.code).toBe(2);
    expect(noSite.stderr).toContain('error INVALID_ARGUMENT: no site directory');
    const missing = await drkit(['--site', join(root, 'nowhere'), 'list']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/^error NOT_FOUND: no drkit site at .*\nhint: /);
    const json = await drkit(['--json', '--site', join(root, 'nowhere'), 'list']);
    expect(json.code).toBe(3);
    expect(lines(json)).toMatchObject([{ type: 'error', code: 'NOT_FOUND', exitCode: 3 }]);
    const foreign = fresh('foreign');
    fs.mkdirSync(foreign);
    fs.writeFileSync(join(foreign, 'notes.txt'), 'mine');
    expect((await drkit(['init', foreign])).code).toBe(2);
    const site = fresh('site');
    expect((await drkit(['init', site, '--no-write-log'])).code).toBe(0);
    const again = await drkit(['init', site]);
    expect(again.code).toBe(8);
    expect(again.stderr).toContain('error ALREADY_EXISTS');
    expect((await drkit(['--site', site, 'snapshot', 'no-such-volume', '--name', 'x'])).code).toBe(3);
    expect((await drkit(['--site', site, 'import', join(root, 'no-such.img'), '--volume', 'v'])).code).toBe(3);
    const odd = join(root, 'odd.img');
    fs.writeFileSync(odd, Buffer.alloc(1000));
    expect((await drkit(['--site', site, 'import', odd, '--volume', 'v'])).code).toBe(2);
    expect((await drkit(['init', fresh('site'), '--write-log-mib', 'lots'])).code).toBe(2);
  });

  it('runs as an executable with its process settings (glibc mmap threshold, small young generation), and without them as `node dist/cli.js`', async () => {
    const site = fresh('settings');
    expect((await drkit(['init', site, '--site-id', 'dr', '--storage-only', '--no-write-log'])).code).toBe(0);
    const asCommand = await serve(['--site', site, 'serve', '--listen', '127.0.0.1:0', '--psk-file', psk], { asExecutable: true });
    expect(asCommand.fields.processSettings).toBe(true);
    if (process.platform === 'linux') {
      // What the kernel started: one process (env execs node), with the settings in place.
      const environ = fs.readFileSync(`/proc/${asCommand.child.pid}/environ`, 'utf8').split('\0');
      expect(environ).toContain('MALLOC_MMAP_THRESHOLD_=131072');
      expect(fs.readFileSync(`/proc/${asCommand.child.pid}/cmdline`, 'utf8').split('\0')).toContain('--max-semi-space-size=4');
    }
    asCommand.child.kill('SIGTERM');
    expect((await asCommand.exited).code).toBe(0);
    const viaNode = await serve(['--site', site, 'serve', '--listen', '127.0.0.1:0', '--psk-file', psk]);
    expect(viaNode.fields.processSettings).toBe(false);
    viaNode.child.kill('SIGTERM');
    expect((await viaNode.exited).code).toBe(0);
  });

  it('serve in a child; replicate, list --remote, restore --from; SIGTERM stops serve with 0 and its site reopens', async () => {
    const source = fresh('source');
    const target = fresh('target');
    const image = join(root, 'remote.img');
    const bytes = makeImage(image, 3);
    expect((await drkit(['init', source, '--site-id', 'src', '--write-log-mib', '8'])).code).toBe(0);
    expect((await drkit(['init', target, '--site-id', 'dr', '--storage-only', '--no-write-log'])).code).toBe(0);
    expect((await drkit(['--site', source, 'import', image, '--volume', 'vm'])).code).toBe(0);
    expect((await drkit(['--site', source, 'snapshot', 'vm', '--name', 'nightly'])).code).toBe(0);
    const server = await serve(['--site', target, 'serve', '--listen', '127.0.0.1:0', '--psk-file', psk]);
    expect(server.remote).toMatch(/^dr@127\.0\.0\.1:\d+$/);

    // Credentials are checked at the boundary: no key, a wrong key, an address without a site id, a wrong site id.
    expect((await drkit(['--site', source, 'replicate', 'nightly', '--to', server.remote])).code).toBe(2);
    const wrongKey = join(root, 'wrong.hex');
    fs.writeFileSync(wrongKey, 'ab'.repeat(32));
    const refused = await drkit(['--site', source, 'replicate', 'nightly', '--to', server.remote, '--psk-file', wrongKey]);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain('error AUTH_FAILED');
    expect((await drkit(['--site', source, 'replicate', 'nightly', '--to', server.remote.slice(3), '--psk-file', psk])).code).toBe(2);
    expect((await drkit(['--site', source, 'replicate', 'nightly', '--to', `other${server.remote.slice(2)}`, '--psk-file', psk])).code).toBe(6);
    const short = join(root, 'short.hex');
    fs.writeFileSync(short, 'abcd');
    expect((await drkit(['--site', source, 'replicate', 'nightly', '--to', server.remote, '--psk-file', short])).code).toBe(2);
    const notHex = join(root, 'not-hex.txt');
    fs.writeFileSync(notHex, 'correct horse battery staple, definitely long enough');
    const badKey = await drkit(['--site', source, 'replicate', 'nightly', '--to', server.remote, '--psk-file', notHex]);
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toContain('must hold a key in hex');

    const sent = await drkit(['--json', '--site', source, 'replicate', 'nightly', '--to', server.remote], { DRKIT_PSK_FILE: psk });
    expect(sent.code).toBe(0);
    const result = lines(sent).at(-1) as { remoteSnapshotId: string; baseSnapshotId: string | null };
    expect(result).toMatchObject({ type: 'result', command: 'replicate', remoteSiteId: 'dr', baseSnapshotId: null });
    const remoteList = lines(await drkit(['--json', '--site', source, 'list', '--remote', server.remote, '--psk-file', psk]));
    expect(remoteList).toMatchObject([{ type: 'remote-snapshot', remoteSiteId: 'dr', originSiteId: 'src', snapshotId: result.remoteSnapshotId }]);

    // A fresh site pulls the snapshot back and writes it to a file.
    const rebuilt = fresh('rebuilt');
    expect((await drkit(['init', rebuilt, '--site-id', 'src', '--no-write-log'])).code).toBe(0);
    const out = join(root, 'from-remote.img');
    const pulled = await drkit(['--site', rebuilt, 'restore', result.remoteSnapshotId, '--from', server.remote, '--psk-file', psk, '--to', out]);
    expect(pulled.code).toBe(0);
    expect(pulled.stdout).toContain('straight into');
    expect(Buffer.compare(fs.readFileSync(out), bytes)).toBe(0);
    // Streamed into the file: nothing landed in the site, and no checkpoint is left.
    expect(lines(await drkit(['--json', '--site', rebuilt, 'list'])).filter((e) => e.type === 'snapshot')).toEqual([]);
    expect(fs.existsSync(`${out}.drkit-restore`)).toBe(false);

    server.child.kill('SIGTERM');
    const stopped = await server.exited;
    expect(stopped.code).toBe(0);
    expect(lines(stopped).at(-1)).toMatchObject({ type: 'result', command: 'serve', stoppedBy: 'SIGTERM' });
    const reopened = lines(await drkit(['--json', '--site', target, 'list']));
    expect(reopened.filter((e) => e.type === 'snapshot')).toMatchObject([{ id: result.remoteSnapshotId, name: 'nightly' }]);
    expect((await drkit(['--site', target, 'verify', '--data'])).code).toBe(0);
  });

  it('serve over TLS: a peer whose certificate names its site id replicates; the site id must match the certificate', async () => {
    const source = fresh('source');
    const target = fresh('target');
    const image = join(root, 'tls.img');
    makeImage(image, 4, MiB);
    expect((await drkit(['init', source, '--site-id', 'siteA', '--no-write-log'])).code).toBe(0);
    expect((await drkit(['init', target, '--site-id', 'siteB', '--storage-only', '--no-write-log'])).code).toBe(0);
    expect((await drkit(['--site', source, 'import', image, '--volume', 'vm'])).code).toBe(0);
    expect((await drkit(['--site', source, 'snapshot', 'vm', '--name', 's'])).code).toBe(0);
    const tlsOf = (name: string): string[] => ['--tls-cert', join(tls, `${name}.crt`), '--tls-key', join(tls, `${name}.key`), '--tls-ca', join(tls, 'ca.crt')];
    const server = await serve(['--site', target, 'serve', '--listen', '127.0.0.1:0', ...tlsOf('siteB')]);
    const partial = await drkit(['--site', source, 'replicate', 's', '--to', server.remote, '--tls-cert', join(tls, 'siteA.crt')]);
    expect(partial.code).toBe(2);
    expect(partial.stderr).toContain('TLS needs all of --tls-cert, --tls-key and --tls-ca');
    const sent = await drkit(['--site', source, 'replicate', 's', '--to', server.remote, ...tlsOf('siteA')]);
    expect(sent.code).toBe(0);
    // siteA's certificate presented by a site calling itself something else is refused.
    const impostor = fresh('impostor');
    expect((await drkit(['init', impostor, '--site-id', 'mallory', '--no-write-log'])).code).toBe(0);
    expect((await drkit(['--site', impostor, 'restore', 'snap-1', '--from', server.remote, ...tlsOf('siteA')])).code).toBe(6);
    server.child.kill('SIGINT');
    expect((await server.exited).code).toBe(0);
  });

  it('nbd --socket exports the snapshot read-only to nbdcopy, which copies its exact bytes; SIGTERM exits 0', async () => {
    const nbdcopy = ['/usr/bin/nbdcopy', '/usr/local/bin/nbdcopy'].find((p) => fs.existsSync(p));
    if (nbdcopy === undefined) {
      console.warn('SKIPPED: drkit nbd test needs nbdcopy (apt-get install -y libnbd-bin)');
      return;
    }
    const site = fresh('nbd-site');
    const image = join(root, 'nbd-disk.img');
    const bytes = makeImage(image, 4);
    expect((await drkit(['init', site, '--write-log-mib', '8'])).code).toBe(0);
    expect((await drkit(['--site', site, 'import', image, '--volume', 'disk'])).code).toBe(0);
    expect((await drkit(['--site', site, 'snapshot', 'disk', '--name', 'base'])).code).toBe(0);
    const socket = join(root, `nbd-${n}.sock`);
    const child = spawn(process.execPath, [cli, '--json', '--site', site, 'nbd', '--socket', socket], { cwd: root, env: { ...process.env, DRKIT_SITE: '' } });
    children.push(child);
    let stdout = '';
    const exited = new Promise<number | null>((done) => child.on('close', done));
    await new Promise<void>((ready, fail) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('"listening"')) ready();
      });
      void exited.then((code) => fail(new Error(`drkit nbd exited early (${code})`)));
    });
    const exports = lines({ code: 0, stdout, stderr: '' }).filter((e) => e.type === 'export');
    expect(exports).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'disk@base', kind: 'snapshot', readOnly: true, byteLength: IMAGE_BYTES })]));
    const uri = exports.find((e) => e.name === 'disk@base')!.uri as string;
    const out = join(root, 'nbd-copy.img');
    const copied = await new Promise<number | null>((done) => spawn(nbdcopy, [uri, out], { stdio: 'inherit' }).on('close', done));
    expect(copied).toBe(0);
    expect(Buffer.compare(fs.readFileSync(out), bytes)).toBe(0);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(fs.existsSync(socket)).toBe(false);
  });

  it('protect --once runs the policy file: snapshots every domain and replicates it', async () => {
    const source = fresh('source');
    const target = fresh('target');
    expect((await drkit(['init', source, '--site-id', 'prod', '--no-write-log'])).code).toBe(0);
    expect((await drkit(['init', target, '--site-id', 'dr', '--storage-only', '--no-write-log'])).code).toBe(0);
    const image = join(root, 'protect.img');
    makeImage(image, 5, MiB);
    const imported = lines(await drkit(['--json', '--site', source, 'import', image, '--volume', 'db']));
    const volumeId = imported.at(-1)!.volumeId as string;
    const server = await serve(['--site', target, 'serve', '--listen', '127.0.0.1:0', '--psk-file', psk]);
    // The remote site "with a proxy": every connection goes through a drkit relay, which takes no key.
    const relay = await serve(['relay', '--listen', '127.0.0.1:0', '--to', server.address]);
    const policy = join(root, 'policy.json');
    fs.writeFileSync(
      policy,
      JSON.stringify({
        formatVersion: 1,
        domains: [
          {
            id: 'db',
            name: 'database',
            protects: { kind: 'entities', entities: [{ kind: 'volume', id: volumeId }] },
            remoteSites: [{ id: 'dr', address: server.address, credentialsRef: 'cli:--psk-file', options: { proxyAddress: relay.address } }],
            schedules: [{ id: 'hourly', recurrence: { kind: 'interval', every: 1, unit: 'hours' }, remoteSiteIds: ['dr'], retention: { local: { keepLast: 3 } } }],
          },
        ],
      }),
    );
    const ran = await drkit(['--json', '--site', source, 'protect', policy, '--once', '--psk-file', psk]);
    fs.writeFileSync(join(root, 'old-policy.json'), JSON.stringify({ formatVersion: 1, remotes: { dr: server.remote }, domains: [{ id: 'x', protects: { kind: 'entities', entities: [{ kind: 'volume', id: volumeId }] }, schedules: [{ id: 'h', recurrence: { kind: 'interval', every: 1, unit: 'hours' }, retention: { local: { keepLast: 1 } } }] }] }));
    expect((await drkit(['--site', source, 'protect', join(root, 'old-policy.json'), '--once'])).code).toBe(2);
    expect(ran.code, ran.stdout + ran.stderr).toBe(0);
    const kinds = lines(ran).filter((e) => e.type === 'event').map((e) => e.kind);
    expect(kinds).toContain('snapshot-taken');
    expect(kinds).toContain('replicated');
    relay.child.kill('SIGTERM');
    const relayed = await relay.exited;
    expect(relayed.code).toBe(0);
    expect(lines(relayed).at(-1)).toMatchObject({ type: 'result', command: 'relay', stoppedBy: 'SIGTERM' });
    expect((lines(relayed).at(-1) as { connections: number }).connections).toBeGreaterThan(0);
    fs.writeFileSync(policy, JSON.stringify({ formatVersion: 7, domains: [] }));
    expect((await drkit(['--site', source, 'protect', policy, '--once'])).code).toBe(4);
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});
