// Shared helpers for bench suites: timing and statistics. Kept tiny on purpose.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Milliseconds taken by `fn` (awaited). */
export async function timeMs(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Median of a numeric array. */
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** MB/s (10^6 bytes per second) for `bytes` moved in `ms`. */
export function mbPerSec(bytes, ms) {
  return bytes / 1e6 / (ms / 1000);
}

/** Deterministic pseudo-random bytes (xorshift32), so benches are repeatable. */
export function seededBytes(byteLength, seed = 1) {
  const out = new Uint8Array(byteLength);
  const view = new Uint32Array(out.buffer, 0, byteLength >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < view.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    view[i] = x;
  }
  return out;
}

/**
 * Wraps a Transport so that the bytes its outgoing connections carry are counted in
 * `counter.bytes`: what this side writes, plus (with `countReads`) what it receives.
 */
export function countingTransport(transport, { countReads = false } = {}) {
  const counter = { bytes: 0 };
  return {
    counter,
    transport: {
      listen: (address, options) => transport.listen(address, options),
      async connect(address, options) {
        const c = await transport.connect(address, options);
        return {
          peer: c.peer,
          write: (bytes, o) => {
            counter.bytes += bytes.length;
            return c.write(bytes, o);
          },
          read: countReads
            ? async function* read() {
                for await (const chunk of c.read()) {
                  counter.bytes += chunk.length;
                  yield chunk;
                }
              }
            : () => c.read(),
          close: () => c.close(),
          destroy: (reason) => c.destroy(reason),
        };
      },
    },
  };
}

/** Peak RSS of this process: VmHWM (ru_maxrss would include the parent's RSS at fork, inherited across exec on Linux). */
export function peakRssBytes() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {}
  return process.resourceUsage().maxRSS * 1024;
}
