// The file a snapshot is streamed into (export, restore --to) is written with O_DIRECT
// where its file system takes it. (The buffered fallback for file systems that refuse it is
// not exercised here: this kernel's tmpfs takes O_DIRECT too.)
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStreamingTarget } from '../../src/cli/internal/transfer.js';

const TMPFS_MAGIC = 0x01021994;
const tmpIsTmpfs = statfsSync(tmpdir()).type === TMPFS_MAGIC;

describe('openStreamingTarget', () => {
  it.skipIf(tmpIsTmpfs)('opens with O_DIRECT on a file system that takes it, and the bytes land', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drkit-stream-'));
    try {
      const d = await openStreamingTarget({ path: join(dir, 'out.img'), create: { byteLength: 1 << 20, overwrite: true } });
      expect(d.capabilities.directIo).toBe(true);
      const data = new Uint8Array(64 * 1024).map((_, i) => i % 251);
      await d.write(4096, data);
      await d.flush();
      expect(await d.read(4096, data.byteLength)).toEqual(data);
      await d.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
