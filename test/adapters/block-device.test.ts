import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBlockDevice, guardBlockDevice, type BlockDevice } from '../../src/adapters/index.js';
import { RawFileBlockDevice } from '../../src/adapters/node.js';
import { describeBlockDevice, FaultyBlockDevice } from '../../src/testing/index.js';

describeBlockDevice({
  name: 'MemoryBlockDevice',
  create: ({ byteLength }) => MemoryBlockDevice.create({ byteLength }),
});

describeBlockDevice({
  name: 'MemoryBlockDevice (4 KiB aligned)',
  create: ({ byteLength }) => MemoryBlockDevice.create({ byteLength, alignmentBytes: 4096 }),
  byteLength: 256 * 1024,
});

const rawDir = mkdtempSync(join(tmpdir(), 'drkit-bd-'));
let rawCount = 0;
describeBlockDevice({
  name: 'RawFileBlockDevice',
  create: ({ byteLength }) => RawFileBlockDevice.open({ path: join(rawDir, `dev-${rawCount++}`), create: { byteLength } }),
  reopen: async (device) => {
    const path = (device as RawFileBlockDevice).path;
    await device.close();
    return RawFileBlockDevice.open({ path });
  },
  cleanup: async () => rmSync(rawDir, { recursive: true, force: true }),
});

// O_DIRECT mode: aligned runs bypass the page cache, the rest (the suite's odd offsets and
// lengths, a partial trailing unit) go through the buffered descriptor. Both, on one file.
const directDir = mkdtempSync(join(tmpdir(), 'drkit-bd-direct-'));
describeBlockDevice({
  name: 'RawFileBlockDevice (direct)',
  create: ({ byteLength }) => RawFileBlockDevice.open({ path: join(directDir, `dev-${rawCount++}`), create: { byteLength }, direct: true }),
  reopen: async (device) => {
    const path = (device as RawFileBlockDevice).path;
    await device.close();
    return RawFileBlockDevice.open({ path, direct: true });
  },
});

describeBlockDevice({
  name: 'RawFileBlockDevice (direct, length not a multiple of 4 KiB)',
  create: ({ byteLength }) => RawFileBlockDevice.open({ path: join(directDir, `dev-${rawCount++}`), create: { byteLength }, direct: true }),
  byteLength: 65536 + 4096 + 100,
  cleanup: async () => rmSync(directDir, { recursive: true, force: true }),
});

// The wrapper with no faults configured must be indistinguishable from its inner device.
const inners = new WeakMap<BlockDevice, BlockDevice>();
describeBlockDevice({
  name: 'FaultyBlockDevice (no faults) over memory',
  create: async ({ byteLength }) => {
    const inner = await MemoryBlockDevice.create({ byteLength });
    const d = new FaultyBlockDevice(inner, { seed: 1, ownsInner: false });
    inners.set(d, inner);
    return d;
  },
  reopen: async (device) => {
    await device.close();
    const inner = inners.get(device) as BlockDevice;
    const d = new FaultyBlockDevice(inner, { seed: 2, ownsInner: false });
    inners.set(d, inner);
    return d;
  },
});

describeBlockDevice({
  name: 'guardBlockDevice over memory',
  create: async ({ byteLength }) => guardBlockDevice(await MemoryBlockDevice.create({ byteLength }), { maxConcurrency: 2 }),
});
