/**
 * Credentials and remote addresses of the replication commands. A remote is written
 * `SITE_ID@HOST:PORT`: the site id is what the handshake checks the peer proves, so a
 * command never talks to a site it did not name. Peers authenticate with a pre-shared
 * key (`--psk-file`, hex), with TLS certificates from one CA whose common name is the site
 * id (`--tls-cert/--tls-key/--tls-ca`), or both.
 */
import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { DrkitError, fromHex, toDrkitError } from '../../core/index.js';
import { TcpTransport, TlsTransport } from '../../adapters/node.js';
import type { PeerInfo, Transport } from '../../adapters/index.js';
import type { RemoteSite, SiteOptions } from '../../replication/index.js';
import type { RemoteConnection } from '../../policy/index.js';

/** Environment variable naming the pre-shared key file when `--psk-file` is absent. */
export const PSK_FILE_ENV = 'DRKIT_PSK_FILE';
/** Largest credential file read: keys and certificates are a few KiB. */
const MAX_CREDENTIAL_FILE_BYTES = 1024 * 1024;

/** The credential flags as commander parses them. */
export interface CredentialFlags {
  pskFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/** Loaded credentials. */
export interface Credentials {
  readonly psk: Uint8Array | undefined;
  readonly transport: Transport;
  readonly tls: boolean;
}

/** Adds the credential flags to a command. */
export function withCredentialOptions(command: Command): Command {
  return command
    .option('--psk-file <file>', `pre-shared key shared with the peer sites, in hex (default: $${PSK_FILE_ENV}); make one with \`openssl rand -hex 32\``)
    .option('--tls-cert <file>', 'this site\'s TLS certificate (PEM); its common name must be the site id')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--tls-ca <file>', 'the CA certificate (PEM) that issued every site\'s certificate');
}

/**
 * Reads the key and certificates the flags name.
 * @throws INVALID_ARGUMENT for no credentials, a partial TLS set or a malformed key; NOT_FOUND for a missing file
 */
export async function loadCredentials(flags: CredentialFlags): Promise<Credentials> {
  const pskFile = flags.pskFile ?? process.env[PSK_FILE_ENV];
  let psk: Uint8Array | undefined;
  if (pskFile !== undefined && pskFile !== '') {
    const text = new TextDecoder().decode(await readCredential(pskFile)).trim();
    psk = fromHex(text);
    // The handshake refuses keys shorter than its minimum (16 bytes) itself.
    if (psk === undefined || psk.byteLength === 0) {
      throw new DrkitError('INVALID_ARGUMENT', `${pskFile} must hold a key in hex (e.g. \`openssl rand -hex 32\`)`, { data: { path: pskFile } });
    }
  }
  const tlsFiles = [flags.tlsCert, flags.tlsKey, flags.tlsCa];
  const tlsCount = tlsFiles.filter((f) => f !== undefined).length;
  if (tlsCount !== 0 && tlsCount !== 3) throw new DrkitError('INVALID_ARGUMENT', 'TLS needs all of --tls-cert, --tls-key and --tls-ca');
  if (psk === undefined && tlsCount === 0) {
    throw new DrkitError('INVALID_ARGUMENT', `replication needs credentials: --psk-file (or $${PSK_FILE_ENV}), or --tls-cert/--tls-key/--tls-ca`);
  }
  const transport =
    tlsCount === 3
      ? TlsTransport.create({ cert: await readCredential(flags.tlsCert!), key: await readCredential(flags.tlsKey!), ca: await readCredential(flags.tlsCa!) })
      : TcpTransport.create();
  return { psk, transport, tls: tlsCount === 3 };
}

/** A TLS peer may act as the site its certificate's common name names, and no other. */
function certificateNames(peer: PeerInfo, siteId: string): boolean {
  return peer.commonName === siteId;
}

/** The server side's Site options for these credentials: every peer with the key, and/or the right certificate. */
export function serverOptions(credentials: Credentials): Pick<SiteOptions, 'peerKeys' | 'authenticatePeer'> {
  const psk = credentials.psk;
  return {
    ...(psk === undefined ? {} : { peerKeys: () => psk }),
    ...(credentials.tls ? { authenticatePeer: certificateNames } : {}),
  };
}

/**
 * Parses `SITE_ID@HOST:PORT` into a remote site reached with `credentials`.
 * @throws INVALID_ARGUMENT without the `SITE_ID@` part
 */
export function parseRemote(address: string, credentials: Credentials): RemoteSite {
  const at = address.indexOf('@');
  const siteId = at > 0 ? address.slice(0, at) : '';
  const hostPort = address.slice(at + 1);
  if (siteId === '' || hostPort === '') {
    throw new DrkitError('INVALID_ARGUMENT', `remote address "${address}" must be SITE_ID@HOST:PORT (the remote site's id, as \`drkit serve\` prints it)`, { data: { address } });
  }
  return { siteId, address: hostPort, ...connectionOf(credentials) };
}

/** How these credentials reach and trust a site: the transport, the key and/or the certificate check. */
export function connectionOf(credentials: Credentials): RemoteConnection {
  return {
    transport: credentials.transport,
    ...(credentials.psk === undefined ? {} : { psk: credentials.psk }),
    ...(credentials.tls ? { authenticate: certificateNames } : {}),
  };
}

async function readCredential(path: string): Promise<Uint8Array> {
  const stat = await fs.stat(path).catch((err: unknown) => {
    throw toDrkitError(err, 'IO_ERROR', `cannot read ${path}`, { path });
  });
  if (stat.size > MAX_CREDENTIAL_FILE_BYTES) throw new DrkitError('INVALID_ARGUMENT', `${path} is too large to be a key or certificate`, { data: { path } });
  return fs.readFile(path);
}
