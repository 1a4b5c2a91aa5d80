// Memory probe for bench processes (issue #13 item 5): load with
//   NODE_OPTIONS="--require /abs/path/bench/memory-probe.cjs" npm run bench -- ...
// Every process (the bench and its children) samples process.memoryUsage() every 20 ms and,
// at exit, prints one line to stderr: `memory-probe {json}` with the peaks in MiB and
// VmHWM / RssAnon / RssFile from /proc. Set DRKIT_MEMORY_PROBE_FILE to append there instead.
'use strict';
const { readFileSync, appendFileSync } = require('node:fs');
const MiB = 1024 * 1024;
const peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
const sample = () => {
  const m = process.memoryUsage();
  for (const k of Object.keys(peak)) if (m[k] > peak[k]) peak[k] = m[k];
};
const timer = setInterval(sample, 20);
timer.unref();
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
  const line = `memory-probe ${JSON.stringify(out)}\n`;
  if (process.env.DRKIT_MEMORY_PROBE_FILE) appendFileSync(process.env.DRKIT_MEMORY_PROBE_FILE, line);
  else process.stderr.write(line);
});
