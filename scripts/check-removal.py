#!/usr/bin/env python3
"""Removes each trust-boundary check in turn and runs the tests that must catch it.

Every check at a trust boundary (checksums, fingerprints, MACs, bounds, generations) must
have a test that fails when that check alone is removed (issue #14 item 6). This script
is that claim, runnable: for every entry it edits the source to skip the check, runs the
named test files with vitest, expects at least one failure, and restores the file (also on
Ctrl-C). Usage, from the repository root, after `npm run build`:

    python3 scripts/check-removal.py            # every entry (~5 minutes on 2 cores)
    python3 scripts/check-removal.py frame-mac  # entries whose name contains the text

Exit status 1 when a removal leaves its tests green (that check is unproven).
"""
import pathlib, re, subprocess, sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# A removal that makes its tests hang counts as caught (they cannot pass).
TIMEOUT_S = 300

# (name, file, text of the check, replacement that skips it, vitest arguments: test files)
CHECKS = [
    ('receiver-fingerprint', 'src/snapshot/snapshot-tree.ts',
     'if (!equalBytes(this.#fingerprinter.fingerprint(e.data), e.fingerprint)) {', 'if (false) {',
     ['test/snapshot/fingerprint-check.test.ts']),
    ('store-read-checksum', 'src/adapters/device-extent-store.ts',
     '    if (actual === entry.checksum) return bytes;', '    return bytes;',
     ['test/adapters/extent-store.test.ts']),
    ('store-put-given-checksum', 'src/adapters/internal/extent-checks.ts',
     '    if (checksum !== undefined && checksum !== actual) {', '    if (false) {',
     ['test/adapters/extent-store.test.ts']),
    ('frame-checksum', 'src/replication/internal/frame-codec.ts',
     "  if (actual !== expected) {\n    throw protocolError('frame checksum mismatch'", "  if (false) {\n    throw protocolError('frame checksum mismatch'",
     ['test/replication/protocol-frames.test.ts']),
    ('frame-size-bound', 'src/replication/internal/frame-codec.ts',
     '  if (payloadByteLength > MAX_FRAME_PAYLOAD_BYTES) {\n    throw protocolError(', '  if (false) {\n    throw protocolError(',
     ['test/replication/protocol-frames.test.ts']),
    ('handshake-proof', 'src/replication/internal/handshake.ts',
     '  return received !== undefined && received.length === expected.length && timingSafeEqual(expected, received);', '  return true;',
     ['test/replication/protocol-handshake.test.ts']),
    ('stale-generation', 'src/replication/generation-guard.ts',
     '  if (incoming < receiver.generation) {', '  if (false) {',
     ['test/replication/generations-on-wire.test.ts']),
    ('diverged-generation', 'src/replication/generation-guard.ts',
     '  if (incoming > receiver.generation && receiver.writableVolumeId !== undefined) {', '  if (false) {',
     ['test/replication/generations-on-wire.test.ts']),
    ('write-log-record-checksum', 'src/snapshot/internal/log-record.ts',
     '  if (view.getBigUint64(end, true) !== xxh.hash(bytes.subarray(0, end))) return undefined;', '',
     ['test/snapshot/write-log-rot.test.ts']),
    ('write-log-rot-vs-torn', 'src/snapshot/internal/write-log.ts',
     '      if (record.flushedSeq >= bad.seq) {', '      if (false) {',
     ['test/snapshot/write-log-rot.test.ts']),
    ('write-log-hold-position', 'src/snapshot/snapshot-tree.ts',
     '        if (first === undefined || first.done === true || first.value.seq !== at.seq) {', '        if (false) {',
     ['test/snapshot/write-log-holds.test.ts']),
    ('write-log-drain-coverage', 'src/snapshot/internal/log-drain.ts',
     '  const spans = writes.map(', '  if (blockBytes > 0) return true;\n  const spans = writes.map(',
     ['test/snapshot/write-log.test.ts', '-t', 'uncovered']),
    ('meta-log-payload-checksum', 'src/adapters/internal/log-recovery.ts',
     "        if (xxh.hash(payload) !== header.payloadChecksum) problem = 'payload-checksum';", '',
     ['test/adapters/meta-store-crash.test.ts', 'test/adapters/meta-store.test.ts']),
    # issue #13: compression at rest and restore into a device
    ('store-stored-form-checksum', 'src/adapters/device-extent-store.ts',
     'const ok = this.#xxh.hash(bytes) === e.checksum ? bytes : await this.#verify(keys[i]!, e, bytes);', 'const ok = bytes;',
     ['test/adapters/extent-store-at-rest.test.ts']),
    ('store-content-checksum', 'src/adapters/device-extent-store.ts',
     '    if (actual !== e.encoded.contentChecksum) throw extentCorruption', '    if (false) throw extentCorruption',
     ['test/adapters/extent-store-at-rest.test.ts']),
    ('device-restore-fingerprint', 'src/replication/internal/device-receiver.ts',
     '      if (digest === undefined || !equalBytes(digest, m.fingerprint)) {', '      if (digest === undefined) {',
     ['test/replication/device-restore.test.ts']),
    ('device-restore-read-back', 'src/replication/internal/device-receiver.ts',
     '    if (!equalBytes(this.#fingerprinter.fingerprint(data), fingerprint)) {', '    if (false) {',
     ['test/replication/device-restore.test.ts']),
    ('block-map-order', 'src/replication/sender.ts',
     '      await prev;\n      return port.blocks(sessionId, cursorAfter, blocks);', '      return port.blocks(sessionId, cursorAfter, blocks);',
     ['test/replication/replicate-inprocess.test.ts', '-t', 'launch order']),
    ('metro-region-fingerprint', 'src/metro/metro-peer.ts',
     'if (!equalBytes(regionFingerprint(data), fingerprint)) throw', 'if (false) throw',
     ['test/metro/metro-peer.test.ts']),
    ('metro-region-read-back', 'src/metro/resync.ts',
     'if (!equalBytes(ack.fingerprint, expected.fingerprint)) {', 'if (false) {',
     ['test/metro/metro-peer.test.ts']),
    ('metro-write-sequence', 'src/metro/metro-peer.ts',
     'if (seq !== expectedSeq) throw', 'if (false) throw',
     ['test/metro/metro-peer.test.ts']),
    ('metro-write-bound', 'src/metro/metro-peer.ts',
     'if (w.byteOffset + w.data.length > device.byteLength) throw', 'if (false) throw',
     ['test/metro/metro-peer.test.ts']),
    ('metro-stale-term', 'src/metro/mirrored-volume.ts',
     "        if (term < r.term) return { refused: 'STALE_GENERATION', term: r.term };\n", '',
     ['test/metro/mirrored-volume.test.ts']),
    ('metro-witness-outdated', 'src/metro/witness.ts',
     "    } else if (old.outdated === req.siteId) {\n      return this.#answer(old, false, 'outdated');\n", '',
     ['test/metro/mirrored-volume.test.ts', 'test/metro/metro-model.test.ts']),
]


def run(name, file, check, skip, tests):
    path = ROOT / file
    original = path.read_text()
    if original.count(check) != 1:
        return f'{name}: the check text is not found exactly once in {file} (update this script)', False
    try:
        path.write_text(original.replace(check, skip, 1))
        proc = subprocess.run(['npx', 'vitest', 'run', *tests], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f'{name}: caught (its tests did not finish in {TIMEOUT_S} s)', True
    finally:
        path.write_text(original)
    summary = re.findall(r'Tests\s+\d+ (?:failed|passed)[^\n]*', proc.stdout + proc.stderr)
    failed = proc.returncode != 0 and bool(re.search(r'\d+ failed', ' '.join(summary)))
    return f"{name}: {'caught' if failed else 'NOT CAUGHT'} ({summary[-1].strip() if summary else 'no summary'})", failed


def main():
    wanted = sys.argv[1:]
    ok = True
    for entry in CHECKS:
        if wanted and not any(w in entry[0] for w in wanted):
            continue
        line, caught = run(*entry)
        print(line, flush=True)
        ok = ok and caught
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
