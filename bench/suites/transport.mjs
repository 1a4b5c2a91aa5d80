// Transport benches (issue 4): bytes per second through loopback TCP and mutual-TLS
// connections, writer awaiting every write (backpressure on), reader consuming
// concurrently in the same process. Both ends share this process's event loop, so the
// figures are a floor for two processes on two cores.
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TcpTransport, TlsTransport } from '../../dist/adapters/node.js';
import { mbPerSec, median, seededBytes, timeMs } from '../util.mjs';

const MiB = 1024 * 1024;
const TRANSFER_BYTES = 1024 * MiB;
/** Write sizes: the 1 MiB the replication pipeline uses, and 64 KiB to show per-write cost. */
const CHUNK_SIZES = [MiB, 64 * 1024];
/** Repeats per figure: odd, so the median is a measured run. */
const REPEATS = 3;

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'tls');
const pem = (name) => readFileSync(join(fixtures, name), 'utf8');

async function transferOnce(server, client, chunkBytes) {
  let accepted;
  const serverSide = new Promise((resolve) => (accepted = resolve));
  const listener = await server.listen('127.0.0.1:0', { onConnection: (c) => accepted(c) });
  const connection = await client.connect(listener.address);
  const peer = await serverSide;
  const chunk = seededBytes(chunkBytes, 3);
  let receivedBytes = 0;
  const ms = await timeMs(async () => {
    const reading = (async () => {
      for await (const c of peer.read()) receivedBytes += c.byteLength;
    })();
    for (let sent = 0; sent < TRANSFER_BYTES; sent += chunkBytes) await connection.write(chunk);
    await connection.close();
    await reading;
  });
  await listener.close();
  if (receivedBytes !== TRANSFER_BYTES) throw new Error(`received ${receivedBytes} of ${TRANSFER_BYTES} bytes`);
  return mbPerSec(TRANSFER_BYTES, ms);
}

function bench(name, makePair) {
  return {
    name,
    async run({ log }) {
      const results = [];
      for (const chunkBytes of CHUNK_SIZES) {
        const values = [];
        for (let i = 0; i < REPEATS; i++) {
          const { server, client } = makePair();
          values.push(await transferOnce(server, client, chunkBytes));
        }
        log(`${name} chunkBytes=${chunkBytes}: ${values.map((v) => v.toFixed(0)).join(', ')} MB/s`);
        results.push({ bench: name, value: median(values), unit: 'MB/s', chunkBytes, transferBytes: TRANSFER_BYTES, repeats: REPEATS });
      }
      return results;
    },
  };
}

export default [
  bench('transport.tcp', () => ({ server: TcpTransport.create(), client: TcpTransport.create() })),
  bench('transport.tls', () => {
    const ca = pem('ca.crt');
    return {
      server: TlsTransport.create({ key: pem('siteB.key'), cert: pem('siteB.crt'), ca }),
      client: TlsTransport.create({ key: pem('siteA.key'), cert: pem('siteA.crt'), ca, serverName: 'siteB' }),
    };
  }),
];
