/**
 * The authentication verdict exchange of TlsTransport. In TLS 1.3 a client finishes its
 * handshake before the server has checked the client's certificate, and node rejects
 * an untrusted peer by silently closing the socket, which the other side cannot tell
 * from a crash (measured: the client saw a clean 'end', the server 'socket hang up').
 * So each side verifies the peer itself (OpenSSL's chain check against `ca`, the name
 * check, the fingerprint allow-list), sends ONE byte, ACCEPTED or REFUSED, and reads
 * the peer's byte; no application byte flows before both said ACCEPTED. A refused side
 * thus learns AUTH_FAILED instead of CONNECTION_LOST. The byte leaks nothing: it is
 * sent inside the encrypted channel, after the peer proved possession of its key.
 */
import { createHash } from 'node:crypto';
import type tls from 'node:tls';
import { DrkitError } from '../../core/errors.js';
import type { PeerInfo } from '../transport.js';
import { socketError } from './socket-errors.js';

const ACCEPTED = 0x01;
const REFUSED = 0x02;

/**
 * How long a refusing side keeps its socket open for the REFUSED byte to be read before
 * resetting it: the peer reads it within one round trip; 5 s covers slow WAN links.
 */
const REFUSAL_LINGER_MS = 5_000;

/** The peer's identity as TLS verified it. */
export function tlsPeerInfo(address: string, socket: tls.TLSSocket): PeerInfo {
  const cert = socket.getPeerCertificate();
  if (cert === null || cert.raw === undefined) return { address };
  const cn = (cert.subject as Record<string, string | string[] | undefined> | undefined)?.CN;
  const commonName = Array.isArray(cn) ? cn[0] : cn;
  return {
    address,
    certificateFingerprint: createHash('sha256').update(cert.raw).digest('hex'),
    ...(commonName === undefined ? {} : { commonName }),
  };
}

/**
 * Why we refuse the peer of `socket`, or undefined when we accept it.
 * `allowed`: lower-case hex SHA-256 fingerprints, or undefined for any cert `ca` trusts.
 */
export function judgePeer(socket: tls.TLSSocket, peer: PeerInfo, allowed: ReadonlySet<string> | undefined): string | undefined {
  if (!socket.authorized) return `certificate not trusted (${String(socket.authorizationError ?? 'no certificate')})`;
  if (peer.certificateFingerprint === undefined) return 'no certificate';
  if (allowed !== undefined && !allowed.has(peer.certificateFingerprint)) {
    return `certificate fingerprint ${peer.certificateFingerprint} is not in allowedFingerprints`;
  }
  return undefined;
}

/**
 * Sends our verdict and reads the peer's. Resolves with the application bytes that
 * arrived after the peer's verdict byte (the socket is left paused); on any failure the
 * socket is torn down (gracefully after our own refusal, so the peer reads it).
 * @throws AUTH_FAILED (either side refused), CONNECTION_LOST, PROTOCOL_ERROR
 */
export async function exchangeVerdicts(socket: tls.TLSSocket, refusal: string | undefined, peer: PeerInfo): Promise<Uint8Array | undefined> {
  const data = { peer: peer.address, certificateFingerprint: peer.certificateFingerprint, commonName: peer.commonName };
  socket.write(Uint8Array.of(refusal === undefined ? ACCEPTED : REFUSED));
  if (refusal !== undefined) {
    socket.end();
    setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
    throw new DrkitError('AUTH_FAILED', `refused ${peer.address}: ${refusal}`, { data });
  }
  try {
    const first = await firstChunk(socket, peer.address);
    if (first[0] === REFUSED) throw new DrkitError('AUTH_FAILED', `${peer.address} refused our certificate`, { data });
    if (first[0] !== ACCEPTED) {
      throw new DrkitError('PROTOCOL_ERROR', `${peer.address} sent ${first[0]} instead of a TLS verdict byte: not a drkit TLS peer?`, { data });
    }
    return first.byteLength > 1 ? first.subarray(1) : undefined;
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

function firstChunk(socket: tls.TLSSocket, address: string): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      socket.pause();
      cleanup();
      resolve(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    };
    const onEnd = (): void => {
      cleanup();
      reject(new DrkitError('CONNECTION_LOST', `${address} closed the connection during authentication`, { data: { peer: address } }));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(socketError(err, 'CONNECTION_LOST', `authenticating ${address}`, { peer: address }));
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
  });
}
