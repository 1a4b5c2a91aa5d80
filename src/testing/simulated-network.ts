/**
 * SimulatedNetwork: a deterministic, seeded network of named hosts on a VirtualClock,
 * for DR tests (replication over slow, lossy, partitioned links; disconnects at random
 * points). `network.transport('siteA')` is a {@link Transport} whose addresses are
 * "host:port".
 *
 * Determinism: nothing happens until the clock advances (a listen() is immediate; a
 * connect, a delivery, an ACK each take at least one timer); every random choice comes
 * from one mulberry32 PRNG seeded by `seed`, so the same seed and the same sequence of
 * calls and clock advances give the same outcome, byte for byte and millisecond for
 * millisecond. Code that cannot advance the clock itself (the `describeTransport`
 * suite, an end-to-end replication awaited as a whole) runs under
 * {@link SimulatedNetwork.autoAdvance}. `linkStats(from, to)` counts bytes per direction
 * of a host pair; bytes on the wire are `bytesSent + bytesRetransmitted`.
 *
 * Fault model, per direction of a host pair (a "link"; options are symmetric):
 * - Writes are cut into segments of at most 64 KiB. A link serialises the segments of
 *   all connections between the pair: a segment of n bytes occupies it
 *   n / bandwidthBytesPerSec seconds, segments queue, and each then arrives
 *   latencyMs + a seeded jitter in [0, jitterMs] later. Only payload bytes count (no
 *   header overhead); connection setup, FINs and ACKs take latency but no bandwidth.
 * - A byte stream cannot lose or reorder bytes and stay a byte stream, so loss and
 *   reorder are modelled as TCP makes them visible. A lost segment (lossProbability) is
 *   retransmitted after a retransmission timeout (retransmitTimeoutMs, doubled per
 *   attempt, capped at 60 s, plus a seeded spread of up to a quarter of it); the
 *   receiver reassembles in sequence, so the loss costs latency and delays every later
 *   byte of that connection (head-of-line blocking). A segment lost more than 15 times
 *   breaks the connection (CONNECTION_LOST), as TCP gives up. Retransmissions occupy
 *   the link again and are counted apart (`bytesRetransmitted`).
 * - reorderProbability delays a segment by a seeded 1..(latencyMs + jitterMs + 1) ms,
 *   so segments of OTHER connections over the link may overtake it; within one
 *   connection order is always kept (the receiver reassembles).
 * - resetProbability: per data segment, the connection breaks when that segment would
 *   have arrived; both sides get CONNECTION_LOST at that instant and the segment is not
 *   delivered. This is how tests get disconnects at random points.
 * - Backpressure: the window of a connection is the bytes written but not yet read by
 *   the peer's application; `write()` waits while it holds `sendBufferBytes` or more,
 *   and the peer's reads release it one latencyMs later (the ACK). In-flight bytes per
 *   connection are therefore below sendBufferBytes + 64 KiB, whatever the link speed,
 *   and, as with a TCP window, one connection moves at most sendBufferBytes per round
 *   trip (measured: 1 GiB over a 100 MB/s link with 10 ms latency takes 21.5 virtual
 *   seconds with the default 1 MiB buffer, the bandwidth-delay product being 2 MB).
 * - `partition(a, b)` breaks every connection between the groups at once (both sides
 *   get CONNECTION_LOST) and black-holes new connection attempts between them: such a
 *   connect fails with CONNECTION_REFUSED when its connect timeout passes (its
 *   `timeoutMs`, else the network's `connectTimeoutMs`), as a SYN into a black hole
 *   would; `heal()` lifts every partition (attempts already black-holed still fail).
 * - `crashHost(h)` is a process crash: every connection of h breaks at once (both
 *   sides CONNECTION_LOST), its listeners close, its pending connects fail, and
 *   listen()/connect() from h fail with CRASHED until `restartHost(h)`. Connects to a
 *   crashed host are refused one round trip later (the OS answers with a reset).
 * - A connect to a port nobody listens on fails with CONNECTION_REFUSED one round trip
 *   later; a connect whose handshake outlasts its timeout fails with TIMEOUT.
 * - `destroy()` breaks the local side at once; the peer sees CONNECTION_LOST one
 *   latencyMs later. `close()` sends a FIN behind the data and resolves once everything
 *   written before it is on the wire (it never rejects); the peer reads all of it, then
 *   its read ends and its writes reject with CLOSED. Our own reader gets what had
 *   arrived before close(); later arrivals, and everything after a reader leaves its
 *   loop early, are discarded and acknowledged at once, so the peer never stalls on
 *   them. A break discards received-but-unread bytes (like a TCP reset). Aborting a
 *   write that is partly on the wire destroys the connection (it can no longer be framed).
 */
import type { IoOptions } from '../adapters/block-device.js';
import type { Connection, Listener, ListenOptions, Transport } from '../adapters/transport.js';
import type { VirtualClock } from '../adapters/virtual-clock.js';
import { AbortError, DrkitError, throwIfAborted } from '../core/errors.js';
import { assertPositiveInteger } from '../core/validate.js';
import { startAutoAdvance, type AutoAdvanceHandle } from './internal/auto-advancer.js';
import { SeededPrng } from './internal/seeded-prng.js';
import { SimEndpoint, type EndpointFabric } from './internal/sim-endpoint.js';
import { NetworkRegistry } from './internal/sim-registry.js';
import { assertHostName, directionKey, newCounters, pairKey, parseAddress, resolveLink } from './internal/sim-options.js';
import { TIME_EPSILON_MS, Wire, type LinkCounters, type ResolvedLink, type WireNetwork } from './internal/sim-wire.js';

/** Parameters of a link between two hosts (symmetric). */
export interface LinkOptions {
  /** One-way latency. @defaultValue 1 */
  latencyMs?: number;
  /** Extra one-way delay, seeded per segment, uniform in [0, jitterMs]. @defaultValue 0 */
  jitterMs?: number;
  /** Serialisation rate of each direction, shared by all connections of the pair. @defaultValue Infinity */
  bandwidthBytesPerSec?: number;
  /** Chance a data segment is lost and must be retransmitted. @defaultValue 0 */
  lossProbability?: number;
  /** Chance a data segment is held back so that other connections' segments overtake it. @defaultValue 0 */
  reorderProbability?: number;
  /** Chance, per data segment, that the connection breaks (CONNECTION_LOST on both sides). @defaultValue 0 */
  resetProbability?: number;
  /** First retransmission timeout of a lost segment. @defaultValue max(200, 2 * (latencyMs + jitterMs)), Linux's minimum RTO */
  retransmitTimeoutMs?: number;
}

/** Options of {@link SimulatedNetwork}. */
export interface SimulatedNetworkOptions {
  /** The clock that drives everything; the test advances it (or calls {@link SimulatedNetwork.autoAdvance}). */
  clock: VirtualClock;
  /** Seed of every random choice (jitter, loss, reorder, reset, retransmission spread). */
  seed: number;
  /** Link options of every host pair without its own {@link SimulatedNetwork.setLink}. @defaultValue all LinkOptions defaults */
  defaults?: LinkOptions;
  /** Per-connection, per-direction bound on bytes written but not yet read by the peer. @defaultValue 1 MiB */
  sendBufferBytes?: number;
  /** Connect timeout when the caller gives none. @defaultValue 5000 */
  connectTimeoutMs?: number;
}

/** Counters of one direction of a host pair, or of the whole network. */
export interface LinkStats {
  /** Payload bytes put on the wire the first time. */
  readonly bytesSent: number;
  /** Payload bytes sent again after a loss (bytes on the wire = bytesSent + bytesRetransmitted). */
  readonly bytesRetransmitted: number;
  /** Payload bytes that arrived at a live receiving endpoint. */
  readonly bytesDelivered: number;
  readonly segmentsSent: number;
  readonly segmentsLost: number;
  readonly segmentsReordered: number;
  /** Connections established from the first host to the second. */
  readonly connectionsOpened: number;
  /** Connections broken by a reset, partition, crash, exhausted retransmissions or destroy(), counted on the direction from client to server. */
  readonly connectionsBroken: number;
}

/** Options of {@link SimulatedNetwork.autoAdvance}. */
export interface AutoAdvanceOptions {
  /** How far time moves per step when only timers that are not the network's are pending (they still fire at their due time). @defaultValue 100 */
  idleStepMs?: number;
}

/** A running auto-advance loop; see {@link SimulatedNetwork.autoAdvance}. */
export interface AutoAdvance extends AsyncDisposable {
  /** Stops advancing. @throws whatever a timer callback threw while auto-advancing */
  stop(): Promise<void>;
}

/** Default send buffer: an autotuned Linux socket buffer's order of magnitude; covers 100 Mbit/s x 80 ms. */
const DEFAULT_SEND_BUFFER_BYTES = 1024 * 1024;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

/** See the module comment. */
export class SimulatedNetwork {
  readonly #clock: VirtualClock;
  readonly #prng: SeededPrng;
  readonly #defaults: LinkOptions;
  readonly #defaultLink: ResolvedLink;
  readonly #links = new Map<string, ResolvedLink>();
  readonly #wires = new Map<string, Wire>();
  readonly #counters = new Map<string, LinkCounters>();
  readonly #partitions = new Set<string>();
  readonly #sendBufferBytes: number;
  readonly #connectTimeoutMs: number;
  readonly #registry = new NetworkRegistry();
  readonly #pendingTimers = new Set<{ readonly dueMs: number }>();
  #onSchedule: (() => void) | undefined;
  #autoAdvance: AutoAdvanceHandle | undefined;
  readonly #wireNetwork: WireNetwork;
  readonly #fabric: EndpointFabric;

  /** @throws INVALID_ARGUMENT for a bad seed, link option, buffer size or timeout */
  constructor(options: SimulatedNetworkOptions) {
    const { clock, seed } = options;
    if (typeof clock?.runUntil !== 'function') throw new DrkitError('INVALID_ARGUMENT', 'SimulatedNetwork needs a VirtualClock');
    if (!Number.isSafeInteger(seed)) throw new DrkitError('INVALID_ARGUMENT', `seed must be a safe integer, got ${String(seed)}`);
    this.#clock = clock;
    this.#prng = new SeededPrng(seed);
    this.#defaults = { ...options.defaults };
    this.#defaultLink = resolveLink(this.#defaults);
    this.#sendBufferBytes = options.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES;
    assertPositiveInteger(this.#sendBufferBytes, 'sendBufferBytes');
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    assertPositiveInteger(this.#connectTimeoutMs, 'connectTimeoutMs');
    this.#wireNetwork = {
      clock,
      prng: this.#prng,
      schedule: (atMs, callback) => this.#schedule(atMs, callback),
      link: (from, to) => this.#link(from, to),
      counters: (from, to) => this.#countersOf(from, to),
      breakConnection: (endpoint, err) => this.#breakConnectionOf(endpoint, err),
    };
    this.#fabric = {
      transmit: (from, segment) => this.#wire(from.host, from.other.host).send(from, segment),
      acknowledge: (reader, byteLength) => {
        const writer = reader.other;
        this.#schedule(clock.now() + this.#link(reader.host, writer.host).latencyMs, () => writer.credit(byteLength));
      },
      sendReset: (from) => {
        const to = from.other;
        const connection = this.#registry.connectionOf(from);
        if (connection !== undefined) this.#countersOf(connection.clientHost, connection.serverHost).connectionsBroken++;
        this.#schedule(clock.now() + this.#link(from.host, to.host).latencyMs, () =>
          to.fail(new DrkitError('CONNECTION_LOST', 'connection reset by peer', { data: { address: to.localAddress, peer: to.peer.address, reason: 'reset by peer' } })),
        );
      },
      endpointDone: (endpoint) => this.#registry.endpointDone(endpoint),
    };
  }

  /** A Transport whose connections start at `host`. @throws INVALID_ARGUMENT for a bad host name */
  transport(host: string): Transport {
    assertHostName(host, 'host');
    this.#registry.host(host);
    return {
      connect: (address, options) => this.#connect(host, address, options),
      listen: (address, options) => this.#listen(host, address, options),
    };
  }

  /**
   * Sets the link options between `hostA` and `hostB` (both directions), on top of the
   * network defaults; segments transmitted from now on use them.
   * @throws INVALID_ARGUMENT
   */
  setLink(hostA: string, hostB: string, options: LinkOptions): void {
    assertHostName(hostA, 'hostA');
    assertHostName(hostB, 'hostB');
    this.#links.set(pairKey(hostA, hostB), resolveLink({ ...this.#defaults, ...options }));
  }

  /**
   * Cuts every host of `groupA` off from every host of `groupB`: their connections break
   * now (CONNECTION_LOST on both sides), new connects between them are black-holed.
   * @throws INVALID_ARGUMENT for bad names or a host in both groups
   */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const host of [...groupA, ...groupB]) assertHostName(host, 'host');
    const inB = new Set(groupB);
    const both = groupA.find((host) => inB.has(host));
    if (both !== undefined) throw new DrkitError('INVALID_ARGUMENT', `host ${both} is in both partition groups`, { data: { host: both } });
    for (const a of groupA) for (const b of groupB) this.#partitions.add(pairKey(a, b));
    for (const connection of this.#registry.connections()) {
      if (this.#partitioned(connection.clientHost, connection.serverHost)) {
        this.#breakConnection(connection, 'partitioned');
      }
    }
  }

  /** Lifts every partition. */
  heal(): void {
    this.#partitions.clear();
  }

  /** A process crash of `host`: see the module comment. @throws INVALID_ARGUMENT */
  crashHost(host: string): void {
    assertHostName(host, 'host');
    const state = this.#registry.host(host);
    state.crashed = true;
    for (const listener of state.listeners.values()) listener.closed = true;
    state.listeners.clear();
    for (const fail of [...state.pendingConnects]) {
      fail(new DrkitError('CONNECTION_LOST', `host ${host} crashed during connect`, { data: { host, reason: 'host crashed' } }));
    }
    for (const connection of [...state.connections]) this.#breakConnection(connection, 'host crashed');
  }

  /** Lets a crashed `host` listen and connect again (its old listeners stay closed). @throws INVALID_ARGUMENT */
  restartHost(host: string): void {
    assertHostName(host, 'host');
    this.#registry.host(host).crashed = false;
  }

  /** Counters of the direction `fromHost` -> `toHost`. @throws INVALID_ARGUMENT */
  linkStats(fromHost: string, toHost: string): LinkStats {
    assertHostName(fromHost, 'fromHost');
    assertHostName(toHost, 'toHost');
    return Object.freeze({ ...(this.#counters.get(directionKey(fromHost, toHost)) ?? newCounters()) });
  }

  /** Counters summed over every direction of every pair. */
  totalStats(): LinkStats {
    const total = newCounters();
    for (const counters of this.#counters.values()) {
      for (const key of Object.keys(total) as (keyof LinkCounters)[]) total[key] += counters[key];
    }
    return Object.freeze(total);
  }

  /** Connections not yet finished on both sides (established or half-closed). */
  get openConnectionCount(): number {
    return this.#registry.connectionCount;
  }

  /**
   * Advances the clock by itself whenever the process is otherwise idle (no promise
   * continuation or immediate left to run): time jumps to the network's next event; if
   * only other timers on the clock are pending (sleeps, timeouts of the code under
   * test), it moves `idleStepMs` at a time and those timers fire at their due times.
   * Meant for code that cannot call `advance` itself, such as the `describeTransport`
   * conformance suite or an end-to-end replication test.
   *
   * Rules: while it runs, do not call `advance`/`runUntil` on the clock yourself (two
   * drivers would move time backwards); use it with in-memory adapters only (real I/O
   * looks idle to it, so virtual time would pass while a disk call is in flight); stop
   * it before the test ends. Determinism is kept for code that only awaits promises.
   * @throws BUSY when an auto-advance is already running; INVALID_ARGUMENT for a bad idleStepMs
   */
  autoAdvance(options: AutoAdvanceOptions = {}): AutoAdvance {
    const idleStepMs = options.idleStepMs ?? 100;
    assertPositiveInteger(idleStepMs, 'idleStepMs');
    if (this.#autoAdvance !== undefined) throw new DrkitError('BUSY', 'autoAdvance() is already running on this network', { transient: false });
    const handle = startAutoAdvance(
      {
        clock: this.#clock,
        nextDueMs: () => {
          let earliest: number | undefined;
          for (const timer of this.#pendingTimers) if (earliest === undefined || timer.dueMs < earliest) earliest = timer.dueMs;
          return earliest;
        },
        pendingCount: () => this.#pendingTimers.size,
        onSchedule: (callback) => {
          this.#onSchedule = callback;
        },
      },
      idleStepMs,
    );
    this.#autoAdvance = handle;
    const stop = async (): Promise<void> => {
      if (this.#autoAdvance !== handle) return;
      this.#autoAdvance = undefined;
      await handle.stop();
    };
    return { stop, [Symbol.asyncDispose]: stop };
  }

  /** Runs `callback` at exact time `atMs`, i.e. at the first whole millisecond not before it. */
  #schedule(atMs: number, callback: () => void): void {
    const dueMs = Math.max(this.#clock.now(), Math.ceil(atMs - TIME_EPSILON_MS));
    const record = { dueMs };
    this.#pendingTimers.add(record);
    this.#clock.setTimer(dueMs - this.#clock.now(), () => {
      this.#pendingTimers.delete(record);
      callback();
    });
    this.#onSchedule?.();
  }

  #link(fromHost: string, toHost: string): ResolvedLink {
    return this.#links.get(pairKey(fromHost, toHost)) ?? this.#defaultLink;
  }

  #wire(fromHost: string, toHost: string): Wire {
    const key = directionKey(fromHost, toHost);
    let wire = this.#wires.get(key);
    if (wire === undefined) {
      wire = new Wire(this.#wireNetwork, fromHost, toHost);
      this.#wires.set(key, wire);
    }
    return wire;
  }

  #countersOf(fromHost: string, toHost: string): LinkCounters {
    const key = directionKey(fromHost, toHost);
    let counters = this.#counters.get(key);
    if (counters === undefined) {
      counters = newCounters();
      this.#counters.set(key, counters);
    }
    return counters;
  }

  #partitioned(hostA: string, hostB: string): boolean {
    return hostA !== hostB && this.#partitions.has(pairKey(hostA, hostB));
  }

  #breakConnectionOf(endpoint: SimEndpoint, err: DrkitError): void {
    const connection = this.#registry.connectionOf(endpoint);
    if (connection !== undefined) this.#breakConnection(connection, String(err.data['reason'] ?? 'broken'), err);
  }

  #breakConnection(connection: { client: SimEndpoint; server: SimEndpoint; clientHost: string; serverHost: string }, reason: string, err?: DrkitError): void {
    if (connection.client.broken && connection.server.broken) return;
    this.#countersOf(connection.clientHost, connection.serverHost).connectionsBroken++;
    for (const endpoint of [connection.client, connection.server]) {
      endpoint.fail(
        err ??
          new DrkitError('CONNECTION_LOST', `connection lost: ${reason}`, {
            data: { address: endpoint.localAddress, peer: endpoint.peer.address, reason },
          }),
      );
    }
  }

  #listen(host: string, address: string, options: ListenOptions): Promise<Listener> {
    try {
      throwIfAborted(options?.signal);
      if (typeof options?.onConnection !== 'function') throw new DrkitError('INVALID_ARGUMENT', 'listen() needs an onConnection callback');
      const { host: listenHost, port } = parseAddress(address);
      if (listenHost !== host) {
        throw new DrkitError('INVALID_ARGUMENT', `transport of host ${host} cannot listen on ${address}`, { data: { host, address } });
      }
      const state = this.#registry.host(host);
      if (state.crashed) throw new DrkitError('CRASHED', `host ${host} has crashed; restartHost() it first`, { data: { host } });
      if (port !== 0 && state.listeners.has(port)) throw new DrkitError('ALREADY_EXISTS', `address in use: ${address}`, { data: { address } });
      const record = this.#registry.addListener(host, port, options.onConnection);
      const close = async (): Promise<void> => {
        if (record.closed) return;
        record.closed = true;
        state.listeners.delete(record.port);
      };
      options.signal?.addEventListener('abort', () => void close(), { once: true });
      return Promise.resolve({ address: record.address, close });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #connect(fromHost: string, address: string, options: IoOptions & { timeoutMs?: number } = {}): Promise<Connection> {
    let target: { host: string; port: number };
    let timeoutMs: number;
    try {
      throwIfAborted(options.signal);
      target = parseAddress(address);
      if (target.port === 0) throw new DrkitError('INVALID_ARGUMENT', `cannot connect to port 0: ${address}`, { data: { address } });
      timeoutMs = options.timeoutMs ?? this.#connectTimeoutMs;
      assertPositiveInteger(timeoutMs, 'timeoutMs');
      if (this.#registry.host(fromHost).crashed) throw new DrkitError('CRASHED', `host ${fromHost} has crashed; restartHost() it first`, { data: { host: fromHost } });
    } catch (err) {
      return Promise.reject(err);
    }
    const clock = this.#clock;
    const fromState = this.#registry.host(fromHost);
    const localAddress = `${fromHost}:${this.#registry.allocatePort(fromHost)}`;
    const link = this.#link(fromHost, target.host);
    return new Promise<Connection>((resolve, reject) => {
      let settled = false;
      let blackHoled = false;
      const finish = (err: Error | undefined, connection?: SimEndpoint): void => {
        if (settled) return;
        settled = true;
        fromState.pendingConnects.delete(fail);
        options.signal?.removeEventListener('abort', onAbort);
        if (err !== undefined) reject(err);
        else resolve(connection!);
      };
      const fail = (err: Error): void => finish(err);
      const onAbort = (): void => fail(new AbortError('connect aborted', { cause: options.signal?.reason }));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      fromState.pendingConnects.add(fail);
      this.#schedule(clock.now() + timeoutMs, () =>
        fail(
          blackHoled
            ? new DrkitError('CONNECTION_REFUSED', `no route to ${address}: network partitioned`, { data: { address, reason: 'partitioned' } })
            : new DrkitError('TIMEOUT', `connect to ${address} timed out after ${timeoutMs} ms`, { data: { address, timeoutMs } }),
        ),
      );
      if (this.#partitioned(fromHost, target.host)) {
        blackHoled = true;
        return;
      }
      // SYN: crosses the link, then the listener (if any) accepts or the OS refuses.
      this.#schedule(clock.now() + link.latencyMs + this.#prng.below(link.jitterMs + 1), () => {
        if (settled) return;
        if (this.#partitioned(fromHost, target.host)) {
          blackHoled = true;
          return;
        }
        const back = this.#link(target.host, fromHost);
        const listener = this.#registry.listenerAt(target.host, target.port);
        if (listener === undefined) {
          this.#schedule(clock.now() + back.latencyMs, () =>
            fail(new DrkitError('CONNECTION_REFUSED', `nobody listens at ${address}`, { data: { address } })),
          );
          return;
        }
        const client = new SimEndpoint(this.#fabric, fromHost, localAddress, address, this.#sendBufferBytes);
        const server = new SimEndpoint(this.#fabric, target.host, address, localAddress, this.#sendBufferBytes);
        this.#registry.addConnection(client, server);
        this.#countersOf(fromHost, target.host).connectionsOpened++;
        try {
          listener.onConnection(server);
        } catch (err) {
          server.destroy(err instanceof Error ? err : new DrkitError('INTERNAL', String(err)));
        }
        // SYN-ACK
        this.#schedule(clock.now() + back.latencyMs + this.#prng.below(back.jitterMs + 1), () => {
          if (settled) client.destroy();
          else if (client.broken) fail(new DrkitError('CONNECTION_LOST', `connection to ${address} broke during the handshake`, { data: { address } }));
          else finish(undefined, client);
        });
      });
    });
  }
}
