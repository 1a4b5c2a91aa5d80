/**
 * One direction of a simulated link between two hosts: a serialiser that every
 * connection between the pair shares, plus the per-segment fate (loss and
 * retransmission, reset, jitter, cross-connection reorder).
 *
 * Time is kept in exact (fractional) milliseconds so that bandwidth adds up — 16
 * segments of 65,536 B at 1 MB/s end at exactly 1048.576 ms — while clock timers fire
 * at the next whole millisecond (the VirtualClock takes integer delays).
 */
import type { VirtualClock } from '../../adapters/virtual-clock.js';
import { DrkitError } from '../../core/errors.js';
import type { SeededPrng } from './seeded-prng.js';
import type { Segment, SimEndpoint } from './sim-endpoint.js';

/**
 * Retransmissions of one segment before the connection is declared dead, as Linux's
 * `tcp_retries2` (15): with loss 0.5 a connection still dies only once in ~65k segments.
 */
export const MAX_RETRANSMISSIONS = 15;

/** Ceiling of the exponentially backed-off retransmission timeout (Linux caps its RTO at 120 s; 60 s keeps simulated outages short). */
export const MAX_RETRANSMIT_TIMEOUT_MS = 60_000;

/**
 * Float error allowed in exact times (summed serialisation times drift by ~1e-13 ms):
 * a time within it of a whole millisecond counts as that millisecond. Scheduling and
 * the pump must use the same tolerance, or a pump could wake up "too early" forever.
 */
export const TIME_EPSILON_MS = 1e-6;

/** Link parameters with every default applied (see `LinkOptions`). */
export interface ResolvedLink {
  readonly latencyMs: number;
  readonly jitterMs: number;
  readonly bandwidthBytesPerSec: number;
  readonly lossProbability: number;
  readonly reorderProbability: number;
  readonly resetProbability: number;
  readonly retransmitTimeoutMs: number;
}

/** Mutable counters of one direction of a host pair (published as frozen `LinkStats`). */
export interface LinkCounters {
  bytesSent: number;
  bytesRetransmitted: number;
  bytesDelivered: number;
  segmentsSent: number;
  segmentsLost: number;
  segmentsReordered: number;
  connectionsOpened: number;
  connectionsBroken: number;
}

/** What a wire needs from the network. */
export interface WireNetwork {
  readonly clock: VirtualClock;
  readonly prng: SeededPrng;
  /** Runs `callback` at exact time `atMs` (rounded up to the clock's millisecond). */
  schedule(atMs: number, callback: () => void): void;
  link(fromHost: string, toHost: string): ResolvedLink;
  counters(fromHost: string, toHost: string): LinkCounters;
  /** Breaks the connection `endpoint` belongs to, on both sides. */
  breakConnection(endpoint: SimEndpoint, err: DrkitError): void;
}

interface WireItem {
  readonly sender: SimEndpoint;
  readonly segment: Segment;
  readonly readyAtMs: number;
  attempts: number;
}

/** See the module comment. */
export class Wire {
  readonly #net: WireNetwork;
  readonly #fromHost: string;
  readonly #toHost: string;
  // Unbounded by design: it holds only admitted segments, and admission is bounded per
  // connection by the send buffer, so its size is (connections x send buffer).
  readonly #queue: WireItem[] = [];
  #freeAtMs = 0;
  #pumpScheduled = false;

  constructor(net: WireNetwork, fromHost: string, toHost: string) {
    this.#net = net;
    this.#fromHost = fromHost;
    this.#toHost = toHost;
  }

  /** Queues `segment` of `sender` for transmission now. */
  send(sender: SimEndpoint, segment: Segment): void {
    this.#queue.push({ sender, segment, readyAtMs: this.#net.clock.now(), attempts: 0 });
    this.#pump();
  }

  /** Starts every queued segment whose turn on the serialiser has come. */
  #pump(): void {
    const nowMs = this.#net.clock.now();
    while (this.#queue.length > 0) {
      const item = this.#queue[0]!;
      if (item.sender.broken || item.sender.other.broken) {
        this.#queue.shift(); // the connection died: its unsent segments vanish with it
        continue;
      }
      const startMs = Math.max(this.#freeAtMs, item.readyAtMs);
      if (startMs > nowMs + TIME_EPSILON_MS) {
        if (!this.#pumpScheduled) {
          this.#pumpScheduled = true;
          this.#net.schedule(startMs, () => {
            this.#pumpScheduled = false;
            this.#pump();
          });
        }
        return;
      }
      this.#queue.shift();
      this.#transmit(item, startMs);
    }
  }

  #transmit(item: WireItem, startMs: number): void {
    const link = this.#net.link(this.#fromHost, this.#toHost);
    const counters = this.#net.counters(this.#fromHost, this.#toHost);
    const prng = this.#net.prng;
    const bytes = item.segment.bytes;
    const byteLength = bytes?.byteLength ?? 0;
    const endMs = startMs + (byteLength * 1000) / link.bandwidthBytesPerSec;
    this.#freeAtMs = endMs;
    const receiver = item.sender.other;
    if (bytes === null) {
      // FINs carry no data: they are neither lost nor reset, only delayed like the rest.
      this.#net.schedule(endMs + link.latencyMs + prng.below(link.jitterMs + 1), () => receiver.receive(item.segment));
      return;
    }
    if (item.attempts === 0) {
      counters.bytesSent += byteLength;
      counters.segmentsSent++;
    } else {
      counters.bytesRetransmitted += byteLength;
    }
    if (prng.chance(link.lossProbability)) {
      counters.segmentsLost++;
      item.attempts++;
      if (item.attempts > MAX_RETRANSMISSIONS) {
        this.#net.schedule(endMs, () =>
          this.#net.breakConnection(
            item.sender,
            new DrkitError('CONNECTION_LOST', `segment lost ${item.attempts} times: connection timed out`, {
              data: { fromHost: this.#fromHost, toHost: this.#toHost, reason: 'retransmissions exhausted' },
            }),
          ),
        );
        return;
      }
      const backoffMs = Math.min(link.retransmitTimeoutMs * 2 ** (item.attempts - 1), MAX_RETRANSMIT_TIMEOUT_MS);
      const retryAtMs = endMs + backoffMs + prng.below(Math.floor(link.retransmitTimeoutMs / 4) + 1);
      this.#net.schedule(retryAtMs, () => {
        // Retransmissions go first, as TCP sends them before new data.
        this.#queue.unshift({ ...item, readyAtMs: retryAtMs });
        this.#pump();
      });
      return;
    }
    let arrivalMs = endMs + link.latencyMs + prng.below(link.jitterMs + 1);
    if (prng.chance(link.reorderProbability)) {
      counters.segmentsReordered++;
      arrivalMs += 1 + prng.below(link.latencyMs + link.jitterMs + 1);
    }
    if (prng.chance(link.resetProbability)) {
      this.#net.schedule(arrivalMs, () =>
        this.#net.breakConnection(
          item.sender,
          new DrkitError('CONNECTION_LOST', 'connection reset (injected)', {
            data: { fromHost: this.#fromHost, toHost: this.#toHost, reason: 'reset' },
          }),
        ),
      );
      return;
    }
    this.#net.schedule(arrivalMs, () => {
      if (receiver.broken) return;
      counters.bytesDelivered += byteLength;
      receiver.receive(item.segment);
    });
  }
}
