/**
 * A PeerReceiver that forwards to a site's ReceiverState and counts what a pull receives,
 * so `Site.pull` can report progress (phase, logical bytes mapped, extent bytes, wire
 * bytes) like `replicate()` does. It changes nothing of what the receiver does.
 */
import type { ReplicationProgress } from '../sender.js';
import type { PeerReceiver } from './peer.js';

/** Progress reports at most this often (a bar redraw, not a line per batch). */
const PROGRESS_INTERVAL_MS = 100;

/** Wraps `inner`; `wireBytes()` reads the connection's counters once it exists. */
export function progressReceiver(inner: PeerReceiver, onProgress: ((p: ReplicationProgress) => void) | undefined, wireBytes: () => number): { receiver: PeerReceiver; progress: () => ReplicationProgress } {
  const c = { completedBytes: 0, totalBytes: 0, dedupedBytes: 0, zeroBytes: 0, sentExtentBytes: 0, compressedExtentBytes: 0 };
  let blockBytes = 0;
  let lastMs = 0;
  const progress = (phase: ReplicationProgress['phase']): ReplicationProgress => ({ phase, ...c, wireBytes: wireBytes() });
  const receiver: PeerReceiver = {
    list: (volumeKey) => inner.list(volumeKey),
    async begin(request, owner) {
      const res = await inner.begin(request, owner);
      blockBytes = request.blockBytes;
      c.totalBytes = request.byteLength - res.resumeBlock * request.blockBytes;
      onProgress?.(progress('scan'));
      return res;
    },
    have: (fingerprints) => inner.have(fingerprints),
    async extents(extents) {
      await inner.extents(extents);
      for (const e of extents) {
        c.sentExtentBytes += e.rawLength;
        c.compressedExtentBytes += e.data.byteLength;
      }
    },
    async blocks(sessionId, cursorAfter, blocks, owner) {
      const cursor = await inner.blocks(sessionId, cursorAfter, blocks, owner);
      c.completedBytes += blocks.length * blockBytes;
      for (const b of blocks) if (b.fingerprint === undefined) c.zeroBytes += blockBytes;
      const now = Date.now();
      if (now - lastMs >= PROGRESS_INTERVAL_MS) {
        lastMs = now;
        onProgress?.(progress('transfer'));
      }
      return cursor;
    },
    async commit(sessionIds, owner) {
      onProgress?.(progress('commit'));
      return inner.commit(sessionIds, owner);
    },
    abort: (sessionId, owner) => inner.abort(sessionId, owner),
    prune: (requester, snapshots) => inner.prune(requester, snapshots),
    release: (owner) => inner.release(owner),
  };
  return { receiver, progress: () => progress('done') };
}
