/**
 * Exact-length reads from a socket: the NBD messages are fixed headers followed by
 * payloads whose length the header gives, so the protocol code asks for "the next n
 * bytes" and this class buffers what the socket delivers. The socket is paused while
 * more than READ_AHEAD_BYTES sit unread, so a client that floods the server is held back
 * by TCP instead of filling our memory.
 */
import type net from 'node:net';
import { DrkitError } from '../../core/errors.js';

/** Unread bytes buffered before the socket is paused: a few requests' worth of read-ahead. */
const READ_AHEAD_BYTES = 1024 * 1024;

/** Buffers a socket's bytes and hands them out in exact-length pieces, one reader at a time. */
export class SocketReader {
  readonly #socket: net.Socket;
  readonly #chunks: Buffer[] = [];
  #bufferedBytes = 0;
  #ended = false;
  #failure: DrkitError | undefined;
  #wake: (() => void) | undefined;
  #wantBytes = 0;
  #onCancel: () => void = () => undefined;
  /** Resolves once {@link cancel} was called: lets a loop waiting elsewhere notice the shutdown. */
  readonly cancelled: Promise<void> = new Promise((resolve) => {
    this.#onCancel = resolve;
  });

  constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#bufferedBytes += chunk.length;
      if (this.#bufferedBytes >= Math.max(READ_AHEAD_BYTES, this.#wantBytes)) socket.pause();
      this.#notify();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on('close', () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on('error', (err: Error) => {
      this.#failure ??= new DrkitError('CONNECTION_LOST', `NBD client connection failed: ${err.message}`, { cause: err });
      this.#notify();
    });
  }

  /**
   * The next `byteLength` bytes.
   * @returns undefined when the stream ended cleanly before the first of them
   * @throws CONNECTION_LOST when it ended (or failed) part-way, CLOSED after {@link cancel}
   */
  async read(byteLength: number): Promise<Buffer | undefined> {
    if (byteLength === 0) return Buffer.alloc(0);
    while (this.#bufferedBytes < byteLength) {
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#ended) {
        if (this.#bufferedBytes === 0) return undefined;
        throw new DrkitError('CONNECTION_LOST', `NBD client closed the connection inside a message (${this.#bufferedBytes} of ${byteLength} bytes)`);
      }
      this.#wantBytes = byteLength;
      this.#socket.resume();
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
    if (this.#failure !== undefined) throw this.#failure;
    this.#wantBytes = 0;
    const out = this.#take(byteLength);
    if (this.#bufferedBytes < READ_AHEAD_BYTES) this.#socket.resume();
    return out;
  }

  /** Makes the pending and every later {@link read} fail with `reason` (the server is shutting down). */
  cancel(reason: DrkitError): void {
    this.#failure ??= reason;
    this.#socket.pause();
    this.#notify();
    this.#onCancel();
  }


  #take(byteLength: number): Buffer {
    this.#bufferedBytes -= byteLength;
    const first = this.#chunks[0]!;
    if (first.length >= byteLength) {
      // The common case: the bytes lie in one chunk, so hand out a view, no copy.
      if (first.length === byteLength) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(byteLength);
      return first.subarray(0, byteLength);
    }
    const out = Buffer.allocUnsafe(byteLength);
    let filled = 0;
    while (filled < byteLength) {
      const chunk = this.#chunks[0]!;
      const n = Math.min(chunk.length, byteLength - filled);
      out.set(chunk.subarray(0, n), filled);
      filled += n;
      if (n === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(n);
    }
    return out;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
