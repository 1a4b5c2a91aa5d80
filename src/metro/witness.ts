/**
 * The Metro witness: a small service, run on a third host, that leases each Metro pair
 * to at most one site at a time (DRBD's diskless tiebreaker; the seed's Metro Witness).
 *
 * Safety promise (never two writable sides): a lease is granted to a site other than the
 * holder only after the holder's lease expired by the witness's clock. A holder counts
 * its own lease from the moment it SENT the request, which is before the witness
 * received it, so the holder stops writing before the witness could hand the pair on
 * (with clocks that run at the same rate). Every grant to a new holder increments the
 * pair's term; sides compare terms to decide who may be the resync source.
 * Fencing promise (no acknowledged write lost): a holder that writes without its peer
 * first has the witness record the peer as outdated; an outdated site is never granted
 * the lease (only an operator can force it, on the site itself), so a site that missed
 * acknowledged writes never takes over.
 * Durability promise: holder, term and outdated site are written to the store (the
 * CLI's state file: write, fsync, rename) before the reply that depends on them is sent.
 * Expiry times are not stored: after a restart every held lease counts as just renewed,
 * which only delays a takeover by one lease.
 */
import type { Clock } from '../adapters/clock.js';
import type { Connection, Listener, Transport } from '../adapters/transport.js';
import { DrkitError, toDrkitError } from '../core/errors.js';
import { assertPositiveInteger } from '../core/validate.js';
import { closeWithError } from '../replication/internal/close-with-error.js';
import { serverHandshake } from '../replication/internal/handshake.js';
import { expectMetro, jsonOf, writeJson } from './internal/metro-messages.js';

/** Default lease: 5 s. A takeover after a site failure waits at most this long (plus one poll). */
export const DEFAULT_LEASE_MS = 5000;

/** Most pairs one witness serves: its state is rewritten whole on every change, so it stays small. */
export const MAX_WITNESS_PAIRS = 10_000;

/** The durable part of one pair's lease. */
export interface PairLease {
  readonly holder: string | undefined;
  readonly term: number;
  /** A site that missed acknowledged writes: never granted the lease. */
  readonly outdated: string | undefined;
}

/** Where the witness keeps its state (a file for the CLI, memory in tests). */
export interface WitnessStore {
  load(): Promise<Record<string, PairLease>>;
  save(state: Record<string, PairLease>): Promise<void>;
}

/** A lease request. */
export interface LeaseRequest {
  readonly pairId: string;
  readonly siteId: string;
  readonly peerSiteId: string;
  /** False when the requester will write without its peer (the peer becomes outdated). */
  readonly peerInSync: boolean;
  /** Give the lease up (a planned swap, or a clean shutdown). @defaultValue false */
  readonly release?: boolean;
}

/** The witness's answer. */
export interface LeaseGrant {
  readonly granted: boolean;
  readonly term: number;
  readonly holder: string | undefined;
  readonly leaseMs: number;
  /** Why it was refused: another holder's lease runs, or the requester is outdated. */
  readonly reason: 'granted' | 'released' | 'held' | 'outdated';
}

/** Options of {@link Witness.open}. */
export interface WitnessOptions {
  readonly store: WitnessStore;
  readonly clock: Clock;
  /** @defaultValue DEFAULT_LEASE_MS */
  readonly leaseMs?: number;
}

/** The lease logic and its state (transport-free; see {@link startWitnessServer}). */
export class Witness {
  readonly leaseMs: number;
  readonly #store: WitnessStore;
  readonly #clock: Clock;
  readonly #leases = new Map<string, PairLease>();
  readonly #expiresAtMs = new Map<string, number>();
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(options: WitnessOptions, leaseMs: number) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.leaseMs = leaseMs;
  }

  /** Loads the state; every held lease counts as renewed now. @throws INVALID_ARGUMENT, IO_ERROR, CORRUPTION */
  static async open(options: WitnessOptions): Promise<Witness> {
    const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    assertPositiveInteger(leaseMs, 'leaseMs');
    const w = new Witness(options, leaseMs);
    for (const [pairId, lease] of Object.entries(await options.store.load())) {
      w.#leases.set(pairId, lease);
      if (lease.holder !== undefined) w.#expiresAtMs.set(pairId, options.clock.now() + leaseMs);
    }
    return w;
  }

  /** The current lease of `pairId`. */
  lease(pairId: string): PairLease {
    return this.#leases.get(pairId) ?? { holder: undefined, term: 0, outdated: undefined };
  }

  /** Decides one request (requests are decided one at a time). @throws BUSY past MAX_WITNESS_PAIRS, IO_ERROR */
  request(req: LeaseRequest): Promise<LeaseGrant> {
    const run = this.#tail.then(() => this.#decide(req));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #decide(req: LeaseRequest): Promise<LeaseGrant> {
    const now = this.#clock.now();
    const old = this.lease(req.pairId);
    if (!this.#leases.has(req.pairId) && this.#leases.size >= MAX_WITNESS_PAIRS) throw new DrkitError('BUSY', `the witness serves ${MAX_WITNESS_PAIRS} pairs already`);
    const expired = old.holder === undefined || now >= (this.#expiresAtMs.get(req.pairId) ?? 0);
    const outdatedAfter = req.peerInSync ? (old.outdated === req.siteId ? old.outdated : undefined) : req.peerSiteId;
    let next: PairLease;
    let reason: LeaseGrant['reason'];
    if (req.release === true) {
      if (old.holder !== req.siteId) return this.#answer(old, false, 'held');
      next = { holder: undefined, term: old.term, outdated: req.peerInSync ? undefined : req.peerSiteId };
      reason = 'released';
    } else if (old.holder === req.siteId) {
      next = { holder: req.siteId, term: old.term, outdated: outdatedAfter };
      reason = 'granted';
    } else if (!expired) {
      return this.#answer(old, false, 'held');
    } else if (old.outdated === req.siteId) {
      return this.#answer(old, false, 'outdated');
    } else {
      next = { holder: req.siteId, term: old.term + 1, outdated: outdatedAfter };
      reason = 'granted';
    }
    if (next.holder !== old.holder || next.term !== old.term || next.outdated !== old.outdated) {
      const state: Record<string, PairLease> = Object.fromEntries(this.#leases);
      state[req.pairId] = next;
      await this.#store.save(state);
    }
    this.#leases.set(req.pairId, next);
    if (next.holder === undefined) this.#expiresAtMs.delete(req.pairId);
    else this.#expiresAtMs.set(req.pairId, now + this.leaseMs);
    return this.#answer(next, reason === 'granted', reason);
  }

  #answer(lease: PairLease, granted: boolean, reason: LeaseGrant['reason']): LeaseGrant {
    return { granted, term: lease.term, holder: lease.holder, leaseMs: this.leaseMs, reason };
  }
}

/** A memory {@link WitnessStore} (tests: it survives a simulated witness restart when reused). */
export class MemoryWitnessStore implements WitnessStore {
  #state: Record<string, PairLease> = {};
  async load(): Promise<Record<string, PairLease>> {
    return { ...this.#state };
  }
  async save(state: Record<string, PairLease>): Promise<void> {
    this.#state = { ...state };
  }
}

/** Options of {@link startWitnessServer}. */
export interface WitnessServerOptions {
  readonly witness: Witness;
  readonly transport: Transport;
  /** "host:port" to listen on (port 0 picks one). */
  readonly address: string;
  /** Pre-shared key of the sites (at least 16 bytes); every request is authenticated. */
  readonly psk: Uint8Array;
  readonly clock: Clock;
  /** Site id the witness presents in the handshake. @defaultValue 'witness' */
  readonly witnessId?: string;
}

/** A running witness endpoint. */
export interface WitnessServer {
  readonly address: string;
  close(): Promise<void>;
}

/** Serves lease requests over `transport`. @throws ALREADY_EXISTS (address in use), INVALID_ARGUMENT */
export async function startWitnessServer(options: WitnessServerOptions): Promise<WitnessServer> {
  const connections = new Set<Connection>();
  const listener: Listener = await options.transport.listen(options.address, {
    onConnection: (connection) => {
      connections.add(connection);
      void serveConnection(options, connection).finally(() => connections.delete(connection));
    },
  });
  return {
    address: listener.address,
    async close() {
      await listener.close();
      for (const c of connections) c.destroy();
    },
  };
}

async function serveConnection(options: WitnessServerOptions, connection: Connection): Promise<void> {
  let writer;
  try {
    const hs = await serverHandshake(connection, { siteId: options.witnessId ?? 'witness', clock: options.clock, pskFor: () => options.psk });
    writer = hs.writer;
    for (;;) {
      const f = jsonOf(await expectMetro(hs.reader, 'METRO_LEASE_REQ'));
      const req: LeaseRequest = { pairId: f.id('pairId'), siteId: f.id('siteId'), peerSiteId: f.id('peerSiteId'), peerInSync: f.boolean('peerInSync'), release: f.boolean('release') };
      if (req.siteId !== hs.peerSiteId) throw new DrkitError('AUTH_FAILED', `site ${hs.peerSiteId} asked for a lease as ${req.siteId}`);
      const grant = await options.witness.request(req);
      await writeJson(hs.writer, 'METRO_LEASE_RES', { granted: grant.granted, term: grant.term, holder: grant.holder ?? '', leaseMs: grant.leaseMs, reason: grant.reason });
    }
  } catch (err) {
    const e = toDrkitError(err, 'CONNECTION_LOST', 'witness connection failed');
    await closeWithError(connection, writer, e, { clock: options.clock });
  }
}
