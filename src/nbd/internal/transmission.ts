/**
 * The NBD transmission phase on one connection: requests are read as they arrive, checked,
 * run in the order RequestScheduler promises, and answered with simple replies as each
 * finishes (out of order). Memory per connection is bounded: at most
 * MAX_IN_FLIGHT_REQUESTS requests and MAX_IN_FLIGHT_BYTES of payload in flight, and no
 * request is read while MAX_QUEUED_REPLY_BYTES of replies wait in the socket.
 *
 * Durability: FLUSH (and FUA) commit the whole tree before the reply, so every write
 * answered before it is durable. When the connection ends (client disconnect, protocol
 * error or server close) requests in flight finish and, if the connection wrote since
 * its last flush, the tree is flushed before the export is released.
 */
import type { ReadGate } from './read-gate.js';
import type net from 'node:net';
import { DrkitError, isDrkitError, toDrkitError } from '../../core/errors.js';
import { decodeRequestHeader, encodeSimpleReply, type RequestHeader } from './codec.js';
import type { OpenedExport } from './open-export.js';
import {
  MAX_IN_FLIGHT_BYTES,
  MAX_IN_FLIGHT_REQUESTS,
  MAX_PAYLOAD_BYTES,
  MAX_QUEUED_REPLY_BYTES,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  NBD_OK,
  REQUEST_HEADER_BYTES,
  ZERO_STEP_BYTES,
} from './protocol.js';
import { RequestScheduler } from './request-scheduler.js';
import type { SocketReader } from './socket-reader.js';

/** Counters the server aggregates over its connections (`errors` is counted by the server's reporter). */
export interface TransmissionCounters {
  requests: number;
  bytesRead: number;
  bytesWritten: number;
  errors: number;
}

/** What the transmission loop needs from the server. */
export interface TransmissionContext {
  readonly socket: net.Socket;
  readonly reader: SocketReader;
  readonly opened: OpenedExport;
  readonly counters: TransmissionCounters;
  /** Bounds device reads across every connection of the server. */
  readonly readGate: ReadGate;
  /** Called with every failure a client cannot see in full (I/O errors, protocol violations). */
  readonly onError: (error: DrkitError) => void;
}

/**
 * How long queued replies may take to drain when a connection ends cleanly: seconds are
 * plenty for 32 MiB to a live client, and a client that stopped reading must not hold
 * `server.close()` forever.
 */
const END_TIMEOUT_MS = 10_000;

/** Command flags each request type accepts (FUA on every one, as the spec requires once negotiated). */
const ALLOWED_FLAGS = new Map<number, number>([
  [NBD_CMD_READ, NBD_CMD_FLAG_FUA],
  [NBD_CMD_WRITE, NBD_CMD_FLAG_FUA],
  [NBD_CMD_FLUSH, NBD_CMD_FLAG_FUA],
  [NBD_CMD_TRIM, NBD_CMD_FLAG_FUA],
  [NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE],
]);

/** One connection's transmission phase. */
export class Transmission {
  readonly #ctx: TransmissionContext;
  readonly #scheduler: RequestScheduler;
  #inFlightRequests = 0;
  #inFlightBytes = 0;
  #wake: (() => void) | undefined;
  /** The server is closing: stop waiting for room, the next read fails CLOSED. */
  #cancelled = false;
  /** Set by a mutation, cleared when a flush starts: the connection has unflushed writes. */
  #dirty = false;

  constructor(ctx: TransmissionContext) {
    this.#ctx = ctx;
    this.#scheduler = new RequestScheduler(ctx.opened.entry.blockBytes);
    ctx.socket.on('drain', () => this.#notify());
    void ctx.reader.cancelled.then(() => {
      this.#cancelled = true;
      this.#notify();
    });
  }

  /**
   * Serves requests until the client disconnects (NBD_CMD_DISC or end of stream), a
   * protocol violation, or {@link SocketReader.cancel} (server close); then finishes what
   * is in flight, flushes unflushed writes and ends the socket. Never rejects.
   */
  async run(): Promise<void> {
    const { socket, reader } = this.#ctx;
    let hardDisconnect = false;
    try {
      for (;;) {
        await this.#roomForRequest();
        const headerBytes = await reader.read(REQUEST_HEADER_BYTES);
        if (headerBytes === undefined) break;
        const header = decodeRequestHeader(headerBytes);
        if (!header.magicOk) throw new DrkitError('PROTOCOL_ERROR', 'NBD request does not start with NBD_REQUEST_MAGIC');
        if (header.type === NBD_CMD_DISC) break;
        let data: Buffer | undefined;
        if (header.type === NBD_CMD_WRITE) {
          // The payload follows the header whatever we answer; one we refuse to buffer ends the connection.
          if (header.byteLength > MAX_PAYLOAD_BYTES) {
            throw new DrkitError('PROTOCOL_ERROR', `NBD write of ${header.byteLength} bytes exceeds the ${MAX_PAYLOAD_BYTES}-byte payload limit`, {
              data: { byteLength: header.byteLength, limit: MAX_PAYLOAD_BYTES },
            });
          }
          data = await reader.read(header.byteLength);
          if (data === undefined) throw new DrkitError('CONNECTION_LOST', 'NBD client closed the connection inside a write payload');
        }
        this.#dispatch(header, data);
      }
    } catch (err) {
      // CLOSED is the server shutting down (SocketReader.cancel): replies still go out.
      if (!isDrkitError(err, 'CLOSED')) {
        hardDisconnect = true;
        this.#report(toDrkitError(err, 'PROTOCOL_ERROR', 'NBD transmission failed'));
      }
    }
    await this.#scheduler.idle();
    if (this.#dirty) {
      try {
        await this.#ctx.opened.device.flush();
      } catch (err) {
        this.#report(toDrkitError(err, 'IO_ERROR', 'NBD flush at disconnect failed'));
      }
    }
    if (!hardDisconnect && !socket.destroyed) {
      // Queued replies drain before the end; a client that stops reading is cut off.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => socket.end(() => resolve())),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, END_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    socket.destroy();
  }

  #dispatch(header: RequestHeader, data: Buffer | undefined): void {
    this.#ctx.counters.requests++;
    const error = this.#check(header);
    if (error !== NBD_OK) {
      this.#reply(error, header.cookie);
      return;
    }
    const payloadBytes = header.type === NBD_CMD_READ || header.type === NBD_CMD_WRITE ? header.byteLength : 0;
    this.#inFlightRequests++;
    this.#inFlightBytes += payloadBytes;
    this.#execute(header, data)
      .then(
        (readData) => this.#reply(NBD_OK, header.cookie, readData),
        (err: unknown) => {
          const e = toDrkitError(err, 'IO_ERROR', `NBD request type ${header.type} at ${header.byteOffset} (+${header.byteLength})`);
          this.#report(e);
          this.#reply(nbdErrorOf(e), header.cookie);
        },
      )
      .finally(() => {
        this.#inFlightRequests--;
        this.#inFlightBytes -= payloadBytes;
        this.#notify();
      });
  }

  /** The NBD error a request gets without running, or NBD_OK. */
  #check(h: RequestHeader): number {
    const { entry } = this.#ctx.opened;
    const allowed = ALLOWED_FLAGS.get(h.type);
    if (allowed === undefined || (h.commandFlags & ~allowed) !== 0) return NBD_EINVAL;
    if (h.type === NBD_CMD_FLUSH) return NBD_OK;
    const mutates = h.type !== NBD_CMD_READ;
    if (mutates && entry.readOnly) return NBD_EPERM;
    if (h.type === NBD_CMD_READ && h.byteLength > MAX_PAYLOAD_BYTES) return NBD_EINVAL;
    if (h.byteOffset < 0 || h.byteOffset + h.byteLength > entry.byteLength) {
      // The spec's answers: writes past the end are "no space", reads and trims invalid.
      return h.type === NBD_CMD_WRITE || h.type === NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
    }
    return NBD_OK;
  }

  async #execute(h: RequestHeader, data: Buffer | undefined): Promise<Uint8Array | undefined> {
    const { device } = this.#ctx.opened;
    const { counters } = this.#ctx;
    const fua = (h.commandFlags & NBD_CMD_FLAG_FUA) !== 0;
    switch (h.type) {
      case NBD_CMD_READ:
        return this.#scheduler.schedule('read', h.byteOffset, h.byteLength, async () => {
          const out = h.byteLength === 0 ? new Uint8Array(0) : await this.#ctx.readGate.run(() => device.read(h.byteOffset, h.byteLength));
          counters.bytesRead += h.byteLength;
          return out;
        });
      case NBD_CMD_FLUSH:
        return this.#scheduler.schedule('barrier', 0, 0, async () => {
          this.#dirty = false;
          await device.flush();
          return undefined;
        });
      default:
        return this.#scheduler.schedule('mutate', h.byteOffset, h.byteLength, async () => {
          this.#dirty = true;
          if (h.type === NBD_CMD_WRITE) {
            await device.write(h.byteOffset, data!);
            counters.bytesWritten += h.byteLength;
          } else {
            // TRIM and WRITE_ZEROES: zeros read back (whole blocks become holes), in bounded steps.
            for (let done = 0; done < h.byteLength; done += ZERO_STEP_BYTES) {
              await device.discard(h.byteOffset + done, Math.min(ZERO_STEP_BYTES, h.byteLength - done));
            }
          }
          if (fua) {
            this.#dirty = false;
            await device.flush();
          }
          return undefined;
        });
    }
  }

  #reply(error: number, cookie: Uint8Array, data?: Uint8Array): void {
    const { socket } = this.#ctx;
    if (socket.destroyed || !socket.writable) return;
    socket.cork();
    socket.write(encodeSimpleReply(error, cookie));
    if (data !== undefined && data.length > 0) socket.write(data);
    socket.uncork();
  }

  /** Waits until another request fits the bounds, or the server is closing (the next read then fails CLOSED). */
  async #roomForRequest(): Promise<void> {
    const { socket } = this.#ctx;
    while (
      !this.#cancelled &&
      (this.#inFlightRequests >= MAX_IN_FLIGHT_REQUESTS ||
        this.#inFlightBytes + MAX_PAYLOAD_BYTES > MAX_IN_FLIGHT_BYTES ||
        (socket.writableLength > MAX_QUEUED_REPLY_BYTES && !socket.destroyed))
    ) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #report(error: DrkitError): void {
    this.#ctx.onError(error);
  }
}

/** The NBD error value for a failure of the device behind an export. */
function nbdErrorOf(err: DrkitError): number {
  switch (err.code) {
    case 'OUT_OF_RANGE':
    case 'INVALID_ARGUMENT':
      return NBD_EINVAL;
    case 'NO_SPACE':
      return NBD_ENOSPC;
    case 'NOT_SUPPORTED':
      return NBD_EPERM;
    case 'NOT_OPEN':
    case 'CLOSED':
      return NBD_ESHUTDOWN;
    default:
      return NBD_EIO;
  }
}
