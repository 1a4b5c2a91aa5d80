#!/usr/bin/env node
// Benchmark runner. Contract (../shared/DESIGN.md): stdout carries one JSON object per
// line, {"bench","value","unit",...parameters}; human summaries go to stderr.
// Usage: npm run bench [-- name-or-prefix ...]
// Each bench/suites/*.mjs default-exports an array of { name, run(ctx) } where run
// returns an array of result objects (one per parameter set).
import { readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const suiteFiles = readdirSync(join(here, 'suites')).filter((f) => f.endsWith('.mjs')).sort();

const matches = (name, f) => name === f || name.startsWith(f);
// A suite answers to its name and to the bench names it produces (`produces`): the
// replicate suite measures restore.device and store.bytesAtRest on the same image.
const namesOf = (b) => [b.name, ...(b.produces ?? [])];
const selected = (b) => filters.length === 0 || filters.some((f) => namesOf(b).some((name) => matches(name, f)));

// Every suite is loaded before anything runs, so a filter that names no bench (a typo)
// fails at once instead of letting a long run finish having measured nothing.
const suites = [];
for (const file of suiteFiles) suites.push((await import(pathToFileURL(join(here, 'suites', file)).href)).default);
const names = suites.flat().flatMap(namesOf);
const unmatched = filters.filter((f) => !names.some((name) => matches(name, f)));
if (unmatched.length > 0) {
  for (const f of unmatched) process.stderr.write(`bench: no bench name equals or starts with "${f}"\n`);
  process.exit(2);
}

for (const benches of suites) {
  for (const bench of benches) {
    if (!selected(bench)) continue;
    const dir = mkdtempSync(join(process.env.DRKIT_BENCH_DIR ?? tmpdir(), 'drkit-bench-'));
    try {
      const results = await bench.run({ dir, log: (msg) => process.stderr.write(`${msg}\n`) });
      for (const r of results) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        const { bench: name, value, unit, ...params } = r;
        const extra = Object.entries(params).map(([k, v]) => `${k}=${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`).join(" ");
        process.stderr.write(`  ${name.padEnd(28)} ${Number(value).toFixed(3).padStart(14)} ${unit} ${extra}\n`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
