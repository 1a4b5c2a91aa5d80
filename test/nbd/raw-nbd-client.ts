// A deliberately small NBD client for the tests: it speaks the wire format from the spec
// with its own encoding (not the server's codec), so a codec bug cannot hide itself, and
// it can send what no real client would (bad magic, oversize options, unknown flags).
import net from 'node:net';
import type { NbdAddress } from '../../src/nbd/index.js';

export const MAGIC = {
  init: 0x4e42444d41474943n,
  opts: 0x49484156454f5054n,
  rep: 0x3e889045565a9n,
  request: 0x25609513,
  reply: 0x67446698,
};
export const OPT = { exportName: 1, abort: 2, list: 3, starttls: 5, info: 6, go: 7, structuredReply: 8 };
export const REP = { ack: 1, server: 2, info: 3, errUnsup: 0x80000001, errInvalid: 0x80000003, errUnknown: 0x80000006 };
export const INFO = { export: 0, name: 1, description: 2, blockSize: 3 };
export const CMD = { read: 0, write: 1, disc: 2, flush: 3, trim: 4, cache: 5, writeZeroes: 6 };
export const CMD_FLAG = { fua: 1, noHole: 2, df: 4 };
export const ERR = { ok: 0, perm: 1, io: 5, inval: 22, nospc: 28, shutdown: 108 };
export const TX_FLAG = { hasFlags: 1, readOnly: 2, flush: 4, fua: 8, trim: 32, writeZeroes: 64, multiConn: 256 };

export interface OptionReply {
  option: number;
  type: number;
  payload: Buffer;
}

export interface SimpleReply {
  error: number;
  cookie: bigint;
  data: Buffer;
}

export interface Request {
  type: number;
  cookie: bigint;
  byteOffset?: bigint | number;
  byteLength?: number;
  flags?: number;
  data?: Uint8Array;
}

export class RawNbdClient {
  readonly socket: net.Socket;
  #chunks: Buffer[] = [];
  #bufferedBytes = 0;
  #ended = false;
  #wake: (() => void) | undefined;
  /** Resolves when the server closes the connection. */
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#bufferedBytes += chunk.length;
      this.#wake?.();
    });
    this.closed = new Promise((resolve) => {
      const done = (): void => {
        this.#ended = true;
        this.#wake?.();
        resolve();
      };
      socket.on('end', done);
      socket.on('close', done);
      socket.on('error', done);
    });
  }

  static async connect(address: NbdAddress): Promise<RawNbdClient> {
    const socket = address.kind === 'unix' ? net.connect({ path: address.socketPath }) : net.connect({ host: address.host, port: address.port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawNbdClient(socket);
  }

  get isClosed(): boolean {
    return this.#ended;
  }

  /** The next n bytes; rejects if the server closes first. */
  async read(n: number): Promise<Buffer> {
    while (this.#bufferedBytes < n) {
      if (this.#ended) throw new Error(`connection closed with ${this.#bufferedBytes} of ${n} bytes`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
    // Joined only once enough has arrived: a large reply costs one copy, not one per chunk.
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    this.#chunks = all.length > n ? [all.subarray(n)] : [];
    this.#bufferedBytes -= n;
    return all.subarray(0, n);
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Reads the greeting and answers with `clientFlags`; returns the handshake flags. */
  async handshake(clientFlags = 3): Promise<{ init: bigint; opts: bigint; handshakeFlags: number }> {
    const g = await this.read(18);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(clientFlags >>> 0);
    this.send(c);
    return { init: g.readBigUInt64BE(0), opts: g.readBigUInt64BE(8), handshakeFlags: g.readUInt16BE(16) };
  }

  sendOption(option: number, payload: Uint8Array = Buffer.alloc(0), { magic = MAGIC.opts, declaredBytes = payload.length } = {}): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(magic, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(declaredBytes, 12);
    this.send(Buffer.concat([h, payload]));
  }

  async readOptionReply(): Promise<OptionReply> {
    const h = await this.read(20);
    if (h.readBigUInt64BE(0) !== MAGIC.rep) throw new Error('bad option reply magic');
    const payload = Buffer.from(await this.read(h.readUInt32BE(16)));
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), payload };
  }

  /** Sends NBD_OPT_INFO or NBD_OPT_GO and reads replies up to the final one. */
  async info(option: number, name: string, infoTypes: number[] = []): Promise<{ infos: Map<number, Buffer>; final: OptionReply }> {
    this.sendOption(option, infoPayload(name, infoTypes));
    const infos = new Map<number, Buffer>();
    for (;;) {
      const r = await this.readOptionReply();
      if (r.type !== REP.info) return { infos, final: r };
      infos.set(r.payload.readUInt16BE(0), r.payload.subarray(2));
    }
  }

  /** Handshake plus NBD_OPT_GO: ready for transmission. */
  async go(name: string): Promise<{ byteLength: number; flags: number }> {
    await this.handshake();
    const { infos, final } = await this.info(OPT.go, name);
    if (final.type !== REP.ack) throw new Error(`GO ${name} failed: 0x${final.type.toString(16)} ${final.payload.toString()}`);
    const e = infos.get(INFO.export)!;
    return { byteLength: Number(e.readBigUInt64BE(0)), flags: e.readUInt16BE(8) };
  }

  sendRequest(r: Request, magic = MAGIC.request): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(magic, 0);
    h.writeUInt16BE(r.flags ?? 0, 4);
    h.writeUInt16BE(r.type, 6);
    h.writeBigUInt64BE(r.cookie, 8);
    h.writeBigUInt64BE(BigInt(r.byteOffset ?? 0), 16);
    h.writeUInt32BE(r.byteLength ?? r.data?.length ?? 0, 24);
    this.send(r.data === undefined ? h : Buffer.concat([h, r.data]));
  }

  /** Reads one simple reply; `readBytesOf(cookie)` says how much data follows a successful one. */
  async readReply(readBytesOf: (cookie: bigint) => number = () => 0): Promise<SimpleReply> {
    const h = await this.read(16);
    if (h.readUInt32BE(0) !== MAGIC.reply) throw new Error(`bad reply magic 0x${h.readUInt32BE(0).toString(16)}`);
    const error = h.readUInt32BE(4);
    const cookie = h.readBigUInt64BE(8);
    const data = error === 0 ? Buffer.from(await this.read(readBytesOf(cookie))) : Buffer.alloc(0);
    return { error, cookie, data };
  }

  /** Sends one request and reads its reply. */
  async request(r: Request): Promise<SimpleReply> {
    this.sendRequest(r);
    return this.readReply(() => (r.type === CMD.read ? (r.byteLength ?? 0) : 0));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function infoPayload(name: string, infoTypes: number[]): Buffer {
  const n = Buffer.from(name, 'utf8');
  const out = Buffer.alloc(4 + n.length + 2 + 2 * infoTypes.length);
  out.writeUInt32BE(n.length, 0);
  n.copy(out, 4);
  out.writeUInt16BE(infoTypes.length, 4 + n.length);
  infoTypes.forEach((t, i) => out.writeUInt16BE(t, 6 + n.length + 2 * i));
  return out;
}
