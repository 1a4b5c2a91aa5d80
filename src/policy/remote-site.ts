/** RemoteSite: another cluster that receives this site's replicas (seed: "Remote Site"). */
import { bool, deepFreeze, id, integer, join, kindTag, object, text } from './internal/fields.js';

/** Per-site options. Absent optional fields mean "not set". */
export interface RemoteSiteOptions {
  /** The site only stores replicas (a backup target); nothing is ever failed over to it. @defaultValue false */
  readonly storageOnly: boolean;
  /** A bridgehead every coordination and replication message goes through (seed: proxy). */
  readonly proxyAddress?: string;
  /** Replication bandwidth cap towards this site; absent means unlimited. */
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
