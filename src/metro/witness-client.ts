/**
 * WitnessClient: one site's connection to the Metro witness (witness.ts), used by the
 * mirrored volume to acquire, renew and release its pair's lease.
 *
 * Fault-model promise: a request that gets no answer within `requestTimeoutMs` fails
 * with TIMEOUT and drops the connection (the next request reconnects), so a partitioned
 * witness never blocks a caller longer than that; the caller treats any failure as "no
 * lease" and counts validity from when it sent the request (see witness.ts).
 */
import type { Clock } from '../adapters/clock.js';
import type { Transport } from '../adapters/transport.js';
import { DrkitError, toDrkitError } from '../core/errors.js';
import { clientHandshake, type HandshakeResult } from '../replication/internal/handshake.js';
import { expectMetro, jsonOf, writeJson } from './internal/metro-messages.js';
import type { LeaseGrant, LeaseRequest } from './witness.js';

/** Default deadline of one lease request: 1 s (the lease is seconds; a slower witness is as good as gone). */
export const DEFAULT_WITNESS_TIMEOUT_MS = 1000;

/** Options of {@link WitnessClient}. */
export interface WitnessClientOptions {
  readonly transport: Transport;
  readonly address: string;
  readonly siteId: string;
  readonly psk: Uint8Array;
  readonly clock: Clock;
  /** @defaultValue DEFAULT_WITNESS_TIMEOUT_MS */
  readonly requestTimeoutMs?: number;
}

/** Lease requests to the witness, one at a time, over one reconnecting connection. */
export class WitnessClient {
  readonly #options: WitnessClientOptions;
  #session: HandshakeResult | undefined;
  #close: (() => void) | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(options: WitnessClientOptions) {
    this.#options = options;
  }

  /** Sends `request` and waits for the answer. @throws TIMEOUT, CONNECTION_REFUSED, CONNECTION_LOST, AUTH_FAILED, PROTOCOL_ERROR, CLOSED */
  request(request: LeaseRequest): Promise<LeaseGrant> {
    const run = this.#tail.then(() => this.#withDeadline(request));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Drops the connection. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#drop();
  }

  #drop(): void {
    this.#close?.();
    this.#session = undefined;
    this.#close = undefined;
  }

  async #withDeadline(request: LeaseRequest): Promise<LeaseGrant> {
    if (this.#closed) throw new DrkitError('CLOSED', 'the witness client is closed');
    const timeoutMs = this.#options.requestTimeoutMs ?? DEFAULT_WITNESS_TIMEOUT_MS;
    let timer: { cancel(): void } | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = this.#options.clock.setTimer(timeoutMs, () => reject(new DrkitError('TIMEOUT', `the witness did not answer within ${timeoutMs} ms`)));
    });
    const attempt = this.#send(request);
    try {
      return await Promise.race([attempt, deadline]);
    } catch (err) {
      attempt.catch(() => undefined);
      this.#drop();
      throw toDrkitError(err, 'CONNECTION_LOST', 'lease request failed');
    } finally {
      timer?.cancel();
    }
  }

  async #send(request: LeaseRequest): Promise<LeaseGrant> {
    if (this.#session === undefined) {
      const connection = await this.#options.transport.connect(this.#options.address, { timeoutMs: this.#options.requestTimeoutMs ?? DEFAULT_WITNESS_TIMEOUT_MS });
      this.#close = () => connection.destroy();
      this.#session = await clientHandshake(connection, { siteId: this.#options.siteId, clock: this.#options.clock, psk: this.#options.psk });
    }
    const s = this.#session;
    await writeJson(s.writer, 'METRO_LEASE_REQ', { pairId: request.pairId, siteId: request.siteId, peerSiteId: request.peerSiteId, peerInSync: request.peerInSync, release: request.release ?? false });
    const f = jsonOf(await expectMetro(s.reader, 'METRO_LEASE_RES'));
    const holder = f.text('holder', 0, 128);
    return {
      granted: f.boolean('granted'),
      term: f.integer('term', 0, Number.MAX_SAFE_INTEGER),
      holder: holder === '' ? undefined : holder,
      leaseMs: f.integer('leaseMs', 1, Number.MAX_SAFE_INTEGER),
      reason: f.oneOf('reason', ['granted', 'released', 'held', 'outdated'] as const),
    };
  }
}
