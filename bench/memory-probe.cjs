// Memory probe for bench processes (issue #13 item 5): load with
//   NODE_OPTIONS="--require /abs/path/bench/memory-probe.cjs" npm run bench -- ...
// Every process (the bench and its children) samples process.memoryUsage() every 20 ms and,
// at exit, prints one line to stderr: `memory-probe {json}` with the peaks in MiB and
// VmHWM / RssAnon / RssFile from /proc. Set DRKIT_MEMORY_PROBE_FILE to append there instead.
'use strict';
const { readFileSync, appendFileSync } = require('node:fs');
const MiB = 1024 * 1024;
const peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
// DRKIT_MEMORY_PROBE_SMAPS=1: each time RSS passes its peak by 4 MiB, /proc/self/smaps is
// summed by mapping kind ([heap] = glibc's brk heap, anon = V8 and mmap'd buffers, node,
// other files) and the last such summary, the one at the peak, goes into the exit line.
const smapsWanted = process.env.DRKIT_MEMORY_PROBE_SMAPS === '1';
let smapsAtPeak;
let smapsPeakRss = 0;
const readSmaps = () => {
  const sums = {};
  let kind = 'anon';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1];
      kind = name === '' ? 'anon' : name === '[heap]' ? 'heap' : name.startsWith('[') ? 'other' : /\/node$/.test(name) ? 'node' : /data\.mdb$/.test(name) ? 'lmdb' : 'files';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) sums[kind] = (sums[kind] ?? 0) + Number(rss[1]) / 1024;
  }
  for (const k of Object.keys(sums)) sums[k] = +sums[k].toFixed(1);
  return sums;
};
const sample = () => {
  const m = process.memoryUsage();
  for (const k of Object.keys(peak)) if (m[k] > peak[k]) peak[k] = m[k];
  if (smapsWanted && m.rss > smapsPeakRss + 4 * MiB) {
    smapsPeakRss = m.rss;
    smapsAtPeak = { rssMiB: +(m.rss / MiB).toFixed(1), ...readSmaps(), heapTotalMiB: +(m.heapTotal / MiB).toFixed(1), arrayBuffersMiB: +(m.arrayBuffers / MiB).toFixed(1) };
  }
};
const timer = setInterval(sample, 20);
timer.unref();
// After each major GC (mark-compact), what survived: live ArrayBuffers, as opposed to the
// sampled peak, which includes garbage not yet collected.
const gcs = { major: 0, minor: 0, liveArrayBuffersAfterMajorMiB: 0, liveHeapAfterMajorMiB: 0 };
try {
  const { PerformanceObserver, constants } = require('node:perf_hooks');
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = e.detail?.kind ?? e.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gcs.major++;
        const m = process.memoryUsage();
        gcs.liveArrayBuffersAfterMajorMiB = Math.max(gcs.liveArrayBuffersAfterMajorMiB, +(m.arrayBuffers / MiB).toFixed(1));
        gcs.liveHeapAfterMajorMiB = Math.max(gcs.liveHeapAfterMajorMiB, +(m.heapUsed / MiB).toFixed(1));
      } else gcs.minor++;
    }
  }).observe({ entryTypes: ['gc'] });
} catch {
  // perf_hooks without gc entries: peaks only
}
process.on('exit', () => {
  sample();
  const status = (() => {
    try {
      return readFileSync('/proc/self/status', 'utf8');
    } catch {
      return '';
    }
  })();
  const kb = (name) => Number((new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status) ?? [])[1] ?? NaN) / 1024;
  const out = { pid: process.pid, script: process.argv[1], vmHwmMiB: kb('VmHWM'), rssAnonMiB: kb('RssAnon'), rssFileMiB: kb('RssFile') };
  for (const k of Object.keys(peak)) out[`${k}PeakMiB`] = +(peak[k] / MiB).toFixed(1);
  Object.assign(out, gcs);
  if (smapsAtPeak !== undefined) out.smapsAtPeakMiB = smapsAtPeak;
  const line = `memory-probe ${JSON.stringify(out)}\n`;
  if (process.env.DRKIT_MEMORY_PROBE_FILE) appendFileSync(process.env.DRKIT_MEMORY_PROBE_FILE, line);
  else process.stderr.write(line);
});
