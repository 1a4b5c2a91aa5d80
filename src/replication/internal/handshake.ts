/**
 * The connection handshake of protocol v2: protocol version, site ids and mutual peer
 * authentication, by a pre-shared key (HMAC-SHA256 challenge-response over 32-byte
 * nonces from both sides), by the TLS certificate (an `authenticate` callback), or both.
 *
 *   client -> HELLO     {version, siteId, nonce Nc}
 *   server -> CHALLENGE {version, siteId, nonce Ns, proof? = HMAC(psk, server input)}
 *   client -> AUTH      {proof? = HMAC(psk, client input)}
 *   server -> WELCOME   {}
 *
 * Security promise: each side proves knowledge of the key over a nonce the other side
 * just drew, so frames recorded from an earlier session (HELLO, CHALLENGE, AUTH) never
 * authenticate a new one; distinct labels for the two proofs stop reflection. Under a
 * pre-shared key, both sides then derive one frame key per direction (HKDF over the key
 * and both nonces, frame-mac.ts): every later frame — the server's WELCOME first, the
 * client's first frame after AUTH — carries a tag, so an active man in the middle cannot
 * alter, replay, reorder or inject frames. With a TLS identity alone, frames are not
 * tagged: TLS gives the stream its integrity.
 * Failure promise: any failure sends ERROR (when safe), closes the connection and rejects
 * with a coded error (AUTH_FAILED, PROTOCOL_ERROR, FORMAT_VERSION, TIMEOUT, ...) on both sides.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../adapters/clock.js';
import type { Connection, PeerInfo } from '../../adapters/transport.js';
import { loadXxh64 } from '../../core/checksum.js';
import { AbortError, DrkitError, toDrkitError } from '../../core/errors.js';
import { assertPositiveInteger } from '../../core/validate.js';
import { closeWithError } from './close-with-error.js';
import { FrameMac, deriveFrameKeys, u16Prefixed } from './frame-mac.js';
import { NONCE_BYTES } from './control-messages.js';
import { PROTOCOL_VERSION } from './frame-codec.js';
import { FrameReader } from './frame-reader.js';
import { FrameWriter } from './frame-writer.js';
import { checkId } from './json-shape.js';
import { expectMessage, writeMessage } from './messages.js';

/** Default handshake deadline: 10 s covers a few slow round trips; a silent peer must not hold a slot longer. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Shortest pre-shared key: 16 bytes (128 bits), so proofs cannot be brute-forced offline. */
export const MIN_PSK_BYTES = 16;

/** Label of the server's proof. */
const SERVER_LABEL = 'drkit-server';
/** Label of the client's proof. */
const CLIENT_LABEL = 'drkit-client';

/** Options both sides share. */
export interface HandshakeOptions {
  /** This site's id. */
  readonly siteId: string;
  /** Clock of the deadline and the idle timeout. */
  readonly clock: Clock;
  /** Deadline for the whole handshake. @defaultValue DEFAULT_HANDSHAKE_TIMEOUT_MS */
  readonly handshakeTimeoutMs?: number;
  /** Idle timeout of the returned reader (see FrameReaderOptions). @defaultValue undefined (none) */
  readonly idleTimeoutMs?: number;
  /** Cancels the handshake (the connection is then closed). */
  readonly signal?: AbortSignal;
  /**
   * Certificate-based identity (TLS): return true when `peer` (its verified certificate)
   * may act as site `siteId`. When set, it must accept; with a PSK too, both must pass.
   */
  readonly authenticate?: (peer: PeerInfo, siteId: string) => boolean;
}

/** Options of {@link clientHandshake}: at least one of `psk`, `authenticate`. */
export interface ClientHandshakeOptions extends HandshakeOptions {
  /** The key this site shares with the server (at least MIN_PSK_BYTES). */
  readonly psk?: Uint8Array;
  /** When set, the server must be this site. */
  readonly expectedPeerSiteId?: string;
}

/** Options of {@link serverHandshake}: at least one of `pskFor`, `authenticate`. */
export interface ServerHandshakeOptions extends HandshakeOptions {
  /** The key shared with client site `siteId`; undefined for a site we do not know (AUTH_FAILED). */
  readonly pskFor?: (siteId: string) => Uint8Array | undefined;
}

/** An authenticated connection, ready for messages. */
export interface HandshakeResult {
  readonly reader: FrameReader;
  readonly writer: FrameWriter;
  readonly peerSiteId: string;
}

/**
 * HMAC-SHA256(psk, label | version u8 | nonceA | nonceB | u16 len | siteA | u16 len | siteB).
 * Site ids are length-prefixed so that no two (siteA, siteB) pairs share an input.
 */
export function handshakeProof(psk: Uint8Array, label: 'server' | 'client', nonceA: Uint8Array, nonceB: Uint8Array, siteA: string, siteB: string): Uint8Array {
  const hmac = createHmac('sha256', psk);
  hmac.update(label === 'server' ? SERVER_LABEL : CLIENT_LABEL, 'latin1');
  hmac.update(Uint8Array.of(PROTOCOL_VERSION));
  hmac.update(nonceA);
  hmac.update(nonceB);
  hmac.update(u16Prefixed(siteA));
  hmac.update(u16Prefixed(siteB));
  return new Uint8Array(hmac.digest());
}

function proofMatches(expected: Uint8Array, received: Uint8Array | undefined): boolean {
  return received !== undefined && received.length === expected.length && timingSafeEqual(expected, received);
}

function authFailed(message: string, data: Record<string, unknown> = {}, cause?: unknown): DrkitError {
  return new DrkitError('AUTH_FAILED', message, { data, cause });
}

function checkVersion(version: number): void {
  if (version !== PROTOCOL_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `peer speaks protocol version ${version}, this build ${PROTOCOL_VERSION}`, { data: { version, supported: [PROTOCOL_VERSION] } });
  }
}

function callAuthenticate(options: HandshakeOptions, peer: PeerInfo, peerSiteId: string): void {
  if (options.authenticate === undefined) return;
  let ok: boolean;
  try {
    ok = options.authenticate(peer, peerSiteId);
  } catch (err) {
    throw authFailed('authenticate() threw', { peerSiteId }, err);
  }
  if (ok !== true) throw authFailed(`peer ${peer.address} may not act as site ${peerSiteId}`, { peerSiteId, address: peer.address });
}

function validateCommon(options: HandshakeOptions, hasPsk: boolean): void {
  try {
    checkId(options.siteId, 'handshake', 'siteId');
  } catch (err) {
    throw new DrkitError('INVALID_ARGUMENT', (err as Error).message, { cause: err });
  }
  if (options.clock === undefined) throw new DrkitError('INVALID_ARGUMENT', 'handshake needs a clock');
  if (options.handshakeTimeoutMs !== undefined) assertPositiveInteger(options.handshakeTimeoutMs, 'handshakeTimeoutMs');
  if (options.idleTimeoutMs !== undefined) assertPositiveInteger(options.idleTimeoutMs, 'idleTimeoutMs');
  if (!hasPsk && options.authenticate === undefined) {
    throw new DrkitError('INVALID_ARGUMENT', 'a handshake needs a pre-shared key, an authenticate() callback, or both: the peer must be authenticated');
  }
}

/**
 * Runs `steps` under the handshake deadline and signal; on any failure tells the peer
 * (when safe), closes the connection and rethrows as a DrkitError.
 */
async function guarded(connection: Connection, writer: FrameWriter, options: HandshakeOptions, steps: () => Promise<string>): Promise<string> {
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const { signal, clock } = options;
  let cleanup = (): void => undefined;
  const guard = new Promise<never>((_, reject) => {
    const timer = clock.setTimer(timeoutMs, () => reject(new DrkitError('TIMEOUT', `handshake did not finish within ${timeoutMs} ms`, { data: { timeoutMs } })));
    const onAbort = (): void => reject(new AbortError('handshake aborted', { cause: signal?.reason }));
    signal?.addEventListener('abort', onAbort, { once: true });
    cleanup = () => {
      timer.cancel();
      signal?.removeEventListener('abort', onAbort);
    };
  });
  let running: Promise<string> | undefined;
  try {
    if (signal?.aborted) throw new AbortError('handshake aborted', { cause: signal.reason });
    running = steps();
    return await Promise.race([running, guard]);
  } catch (err) {
    running?.catch(() => undefined); // still pending when the guard won; it fails once the connection closes
    const error = toDrkitError(err, 'PROTOCOL_ERROR', 'handshake failed');
    await closeWithError(connection, writer, error, { clock });
    throw error;
  } finally {
    cleanup();
  }
}

/**
 * Authenticates a freshly connected client side of `connection` to the server.
 * @throws INVALID_ARGUMENT (options), AUTH_FAILED, PROTOCOL_ERROR, FORMAT_VERSION, TIMEOUT, ABORTED, CONNECTION_LOST
 */
export async function clientHandshake(connection: Connection, options: ClientHandshakeOptions): Promise<HandshakeResult> {
  const { psk } = options;
  validateCommon(options, psk !== undefined);
  if (psk !== undefined && (!(psk instanceof Uint8Array) || psk.length < MIN_PSK_BYTES)) {
    throw new DrkitError('INVALID_ARGUMENT', `psk must be a Uint8Array of at least ${MIN_PSK_BYTES} bytes`);
  }
  const xxh64 = await loadXxh64();
  const reader = new FrameReader(connection, { xxh64, clock: options.clock, ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }) });
  const writer = new FrameWriter(connection, { xxh64 });
  const peerSiteId = await guarded(connection, writer, options, async () => {
    const clientNonce = new Uint8Array(randomBytes(NONCE_BYTES));
    await writeMessage(writer, { type: 'HELLO', version: PROTOCOL_VERSION, siteId: options.siteId, nonce: clientNonce });
    const challenge = await expectMessage(reader, 'CHALLENGE');
    checkVersion(challenge.version);
    const serverSiteId = challenge.siteId;
    if (options.expectedPeerSiteId !== undefined && serverSiteId !== options.expectedPeerSiteId) {
      throw authFailed(`connected to site ${serverSiteId}, expected ${options.expectedPeerSiteId}`, { peerSiteId: serverSiteId });
    }
    callAuthenticate(options, connection.peer, serverSiteId);
    let proof: Uint8Array | undefined;
    if (psk !== undefined) {
      const expected = handshakeProof(psk, 'server', clientNonce, challenge.nonce, serverSiteId, options.siteId);
      if (!proofMatches(expected, challenge.proof)) throw authFailed(`site ${serverSiteId} did not prove the pre-shared key`, { peerSiteId: serverSiteId });
      proof = handshakeProof(psk, 'client', challenge.nonce, clientNonce, options.siteId, serverSiteId);
    }
    await writeMessage(writer, { type: 'AUTH', ...(proof === undefined ? {} : { proof }) });
    if (psk !== undefined) {
      const keys = deriveFrameKeys(psk, PROTOCOL_VERSION, clientNonce, challenge.nonce, options.siteId, serverSiteId);
      writer.setMac(new FrameMac(keys.clientToServer));
      // WELCOME is the server's first tagged frame: it confirms both derived the same keys.
      reader.setMac(new FrameMac(keys.serverToClient));
    }
    await expectMessage(reader, 'WELCOME');
    return serverSiteId;
  });
  return { reader, writer, peerSiteId };
}

/**
 * Authenticates the client on an accepted `connection`.
 * @throws INVALID_ARGUMENT (options), AUTH_FAILED, PROTOCOL_ERROR, FORMAT_VERSION, TIMEOUT, ABORTED, CONNECTION_LOST
 */
export async function serverHandshake(connection: Connection, options: ServerHandshakeOptions): Promise<HandshakeResult> {
  const { pskFor } = options;
  validateCommon(options, pskFor !== undefined);
  const xxh64 = await loadXxh64();
  const reader = new FrameReader(connection, { xxh64, clock: options.clock, ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }) });
  const writer = new FrameWriter(connection, { xxh64 });
  const peerSiteId = await guarded(connection, writer, options, async () => {
    const hello = await expectMessage(reader, 'HELLO');
    checkVersion(hello.version);
    const clientSiteId = hello.siteId;
    let psk: Uint8Array | undefined;
    if (pskFor !== undefined) {
      try {
        psk = pskFor(clientSiteId);
      } catch (err) {
        throw authFailed('pskFor() threw', { peerSiteId: clientSiteId }, err);
      }
      if (psk === undefined) throw authFailed(`unknown site ${clientSiteId}`, { peerSiteId: clientSiteId });
      if (!(psk instanceof Uint8Array) || psk.length < MIN_PSK_BYTES) {
        throw authFailed(`the pre-shared key for site ${clientSiteId} is not a Uint8Array of at least ${MIN_PSK_BYTES} bytes`, { peerSiteId: clientSiteId });
      }
    }
    callAuthenticate(options, connection.peer, clientSiteId);
    const serverNonce = new Uint8Array(randomBytes(NONCE_BYTES));
    const proof = psk === undefined ? undefined : handshakeProof(psk, 'server', hello.nonce, serverNonce, options.siteId, clientSiteId);
    await writeMessage(writer, { type: 'CHALLENGE', version: PROTOCOL_VERSION, siteId: options.siteId, nonce: serverNonce, ...(proof === undefined ? {} : { proof }) });
    const auth = await expectMessage(reader, 'AUTH');
    if (psk !== undefined) {
      const expected = handshakeProof(psk, 'client', serverNonce, hello.nonce, clientSiteId, options.siteId);
      if (!proofMatches(expected, auth.proof)) throw authFailed(`site ${clientSiteId} did not prove the pre-shared key`, { peerSiteId: clientSiteId });
      const keys = deriveFrameKeys(psk, PROTOCOL_VERSION, hello.nonce, serverNonce, clientSiteId, options.siteId);
      reader.setMac(new FrameMac(keys.clientToServer));
      writer.setMac(new FrameMac(keys.serverToClient));
    }
    await writeMessage(writer, { type: 'WELCOME' });
    return clientSiteId;
  });
  return { reader, writer, peerSiteId };
}
