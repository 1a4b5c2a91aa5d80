/**
 * RemoteSite: another cluster that receives this site's replicas (seed: "Remote Site").
 * One concept across layers: the policy model is the configuration (frozen, serialisable
 * data), and {@link replicationRemoteOf} is the one mapping from it, plus the connection
 * details its `credentialsRef` names, to replication's RemoteSite. The policy `id` IS
 * the replication `siteId` (what the handshake makes the peer prove), `address` is the
 * same address, `proxyAddress` becomes the relay the connection goes through, and
 * `maxBytesPerSecond` and `storageOnly` travel with it.
 */
import type { PeerInfo, Transport } from '../adapters/transport.js';
import type { RemoteSite as ReplicationRemote } from '../replication/index.js';
import { bool, deepFreeze, id, integer, join, kindTag, object, text } from './internal/fields.js';

/** Per-site options. Absent optional fields mean "not set". */
export interface RemoteSiteOptions {
  /**
   * The site only stores replicas (a backup target): policy code never chooses it as a
   * failover, restore-in-place or runbook target (STORAGE_ONLY). @defaultValue false
   */
  readonly storageOnly: boolean;
  /**
   * A bridgehead every coordination and replication message goes through (seed: proxy):
   * a `drkit relay` that forwards the byte stream to `address` without holding any key.
   * Absent means a direct connection.
   */
  readonly proxyAddress?: string;
  /** Replication bandwidth cap towards this site (all transfers to it together); absent means unlimited. */
  readonly maxBytesPerSecond?: number;
}

/** A remote site, as configured. Frozen plain data. */
export interface RemoteSite {
  readonly kind: 'remote-site';
  readonly id: string;
  /** Where to reach it: `host:port` or a URL, as the Transport understands it. */
  readonly address: string;
  /** The NAME of the credentials in the user's secret store; never the secret itself. */
  readonly credentialsRef: string;
  readonly options: RemoteSiteOptions;
}

/** Input of {@link createRemoteSite}: a RemoteSite with optional `kind` and `options`. */
export interface RemoteSiteSpec {
  kind?: 'remote-site';
  id: string;
  address: string;
  credentialsRef: string;
  options?: { storageOnly?: boolean; proxyAddress?: string; maxBytesPerSecond?: number };
}

/**
 * Validates and freezes a remote site.
 * @throws INVALID_ARGUMENT with `data.field` naming the bad field
 */
export function createRemoteSite(spec: RemoteSiteSpec, field = ''): RemoteSite {
  const f = object(spec, field, ['kind', 'id', 'address', 'credentialsRef', 'options']);
  kindTag(f, field, 'remote-site');
  const o = object(f.options ?? {}, join(field, 'options'), ['storageOnly', 'proxyAddress', 'maxBytesPerSecond']);
  const options: { storageOnly: boolean; proxyAddress?: string; maxBytesPerSecond?: number } = {
    storageOnly: o.storageOnly === undefined ? false : bool(o.storageOnly, join(field, 'options.storageOnly')),
  };
  if (o.proxyAddress !== undefined) options.proxyAddress = text(o.proxyAddress, join(field, 'options.proxyAddress'), true);
  if (o.maxBytesPerSecond !== undefined) {
    options.maxBytesPerSecond = integer(o.maxBytesPerSecond, join(field, 'options.maxBytesPerSecond'), 1, Number.MAX_SAFE_INTEGER);
  }
  return deepFreeze({
    kind: 'remote-site',
    id: id(f.id, join(field, 'id')),
    address: text(f.address, join(field, 'address'), true),
    credentialsRef: id(f.credentialsRef, join(field, 'credentialsRef')),
    options,
  });
}

/**
 * What the name in `credentialsRef` resolves to: how to carry bytes to the site and how
 * to trust it. Secrets live here, never in the policy model.
 */
export interface RemoteConnection {
  readonly transport: Transport;
  /** Pre-shared key with that site (at least 16 bytes); optional when TLS identifies it. */
  readonly psk?: Uint8Array;
  /** TLS identity check of the remote's certificate. */
  readonly authenticate?: (peer: PeerInfo, siteId: string) => boolean;
  /** Connect deadline. @defaultValue 10000 */
  readonly connectTimeoutMs?: number;
}

/**
 * The replication RemoteSite of a configured remote site: the one mapping between the
 * two (see the module comment). Every field of the policy model is carried over.
 */
export function replicationRemoteOf(site: RemoteSite, connection: RemoteConnection): ReplicationRemote {
  const o = site.options;
  return {
    siteId: site.id,
    address: site.address,
    ...connection,
    ...(o.proxyAddress === undefined ? {} : { proxyAddress: o.proxyAddress }),
    ...(o.maxBytesPerSecond === undefined ? {} : { maxBytesPerSecond: o.maxBytesPerSecond }),
    storageOnly: o.storageOnly,
  };
}
