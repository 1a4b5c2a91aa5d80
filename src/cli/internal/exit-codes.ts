/**
 * Exit codes of the `drkit` command, by error kind (docs/cli.md keeps the same table), and
 * a hint per error code telling the user what to do next.
 */
import type { ErrorCode } from '../../core/index.js';

/** Exit codes: scripts branch on these. */
export const EXIT = {
  ok: 0,
  /** Anything not listed below (a bug, an unsupported call). */
  failure: 1,
  /** Bad command line or argument. */
  usage: 2,
  /** A site, volume, snapshot, file or extent does not exist. */
  notFound: 3,
  /** Stored or received bytes failed a check, or a format this build cannot read. */
  corruption: 4,
  /** Worth retrying: network, timeouts, busy resources, I/O errors. */
  transient: 5,
  /** The peer refused our credentials or spoke the protocol wrongly. */
  auth: 6,
  /** The device or store is full. */
  noSpace: 7,
  /** The request conflicts with what exists (names taken, lineage diverged or stale). */
  conflict: 8,
  /** Interrupted (SIGINT) or aborted. */
  interrupted: 130,
} as const;

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: EXIT.usage,
  OUT_OF_RANGE: EXIT.usage,
  NOT_FOUND: EXIT.notFound,
  EXTENT_NOT_FOUND: EXIT.notFound,
  CORRUPTION: EXIT.corruption,
  FORMAT_VERSION: EXIT.corruption,
  AUTH_FAILED: EXIT.auth,
  PROTOCOL_ERROR: EXIT.auth,
  NO_SPACE: EXIT.noSpace,
  ALREADY_EXISTS: EXIT.conflict,
  STALE_GENERATION: EXIT.conflict,
  DIVERGED: EXIT.conflict,
  ABORTED: EXIT.interrupted,
};

/** The exit code of a failure with `code` (transient codes not listed exit 5). */
export function exitCodeOf(code: ErrorCode, transient: boolean): number {
  return BY_CODE[code] ?? (transient ? EXIT.transient : EXIT.failure);
}

const HINTS: Partial<Record<ErrorCode, string>> = {
  INVALID_ARGUMENT: 'check the arguments; `drkit help <command>` shows the usage',
  NOT_FOUND: 'check the name or id (`drkit list`), the --site directory (or DRKIT_SITE), or create the site with `drkit init DIR`',
  EXTENT_NOT_FOUND: 'the site lacks data a snapshot references: run `drkit verify` and restore from a remote copy',
  CORRUPTION: 'run `drkit verify --data`; restore damaged snapshots from a remote site (`drkit restore --from`)',
  FORMAT_VERSION: 'this drkit build cannot read that format: use the version that wrote it',
  BUSY: 'another process or command holds the site; wait for it or stop it, then retry',
  CONNECTION_REFUSED: 'is `drkit serve` running at that address? check host, port and firewall, then retry',
  CONNECTION_LOST: 'the connection broke; retry: transfers resume where they stopped',
  TIMEOUT: 'the peer did not answer in time; check the network and retry',
  AUTH_FAILED: 'both sides need the same --psk-file (or certificates from one --tls-ca whose CN is the site id); the address must name the remote site id (SITE@HOST:PORT)',
  PROTOCOL_ERROR: 'the peer speaks another protocol or version: run the same drkit version on both sides',
  NO_SPACE: 'free space on the disk holding the site, or delete old snapshots',
  ALREADY_EXISTS: 'pick another name, or remove what is there',
  DIVERGED: 'the volume was written here after the common snapshot: keep those writes as a clone or force',
  STALE_GENERATION: 'this side is stale: fail it back instead of replicating from it',
  IO_ERROR: 'the disk or file failed an I/O call; check the device and retry',
  INTERNAL: 'this is a bug in drkit: please report it with the command line',
};

/** What to try next after a failure with `code`, if we know. */
export function hintOf(code: ErrorCode): string | undefined {
  return HINTS[code];
}
