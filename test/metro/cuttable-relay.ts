/**
 * A TCP relay the test controls: forwards every connection to one address, counts the
 * bytes it forwards each way, and can cut the link (every relayed connection is destroyed,
 * new ones are dropped on accept) and heal it again.
 */
import net from 'node:net';

export interface CuttableRelay {
  readonly address: string;
  /** Where connections go ("host:port"); until it is set, connections are dropped. */
  target: string | undefined;
  /** Bytes forwarded from the connecting side to the destination, and back. */
  readonly bytes: { forward: number; back: number };
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startCuttableRelay(to?: string): Promise<CuttableRelay> {
  const sockets = new Set<net.Socket>();
  const bytes = { forward: 0, back: 0 };
  let cut = false;
  let relay: CuttableRelay;
  const server = net.createServer((client) => {
    const target = relay.target;
    if (cut || target === undefined) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.slice(target.lastIndexOf(':') + 1)), target.slice(0, target.lastIndexOf(':')));
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d: Buffer) => {
      bytes.forward += d.length;
      if (!upstream.write(d)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (d: Buffer) => {
      bytes.back += d.length;
      if (!client.write(d)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  relay = {
    target: to,
    address: `127.0.0.1:${port}`,
    bytes,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    heal() {
      cut = false;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return relay;
}
