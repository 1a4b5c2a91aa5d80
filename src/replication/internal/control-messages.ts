/**
 * Control messages of protocol v2: small JSON objects (UTF-8, at most
 * MAX_CONTROL_PAYLOAD_BYTES) — the handshake, errors and the request/response steps of a
 * replication conversation. Byte strings (nonces, proofs) travel as lower-case hex.
 */
import type { BeginRequest as PortBeginRequest, BeginResponse as PortBeginResponse } from '../replication-port.js';
import { DrkitError } from '../../core/errors.js';
import { toHex, utf8 } from '../../core/bytes.js';
import { MAX_BLOCK_BYTES, MIN_BLOCK_BYTES, type ConsistencyLevel } from '../../snapshot/index.js';
import { MAX_GENERATION } from '../origin.js';
import { MAX_CONTROL_PAYLOAD_BYTES, MAX_TEXT_CHARS, checkId, parseJsonPayload, shapeError, Fields } from './json-shape.js';

/** Bytes of a handshake nonce: 256 bits, so a nonce never repeats across sessions. */
export const NONCE_BYTES = 32;

/** Bytes of an HMAC-SHA256 proof. */
export const PROOF_BYTES = 32;

/** Snapshots per LIST_RES page: 256 entries of four maximal ids (~560 B each) stay well inside MAX_CONTROL_PAYLOAD_BYTES; more come by `cursor`. */
export const MAX_LIST_SNAPSHOTS = 256;

/** Sessions committed by one COMMIT_REQ (members of a consistency group): 256 maximal ids fit the control payload bound. */
export const MAX_COMMIT_SESSIONS = 256;

/** Longest snapshot name: the snapshot layer's own bound (256 characters). */
export const MAX_SNAPSHOT_NAME_CHARS = 256;

const MAX_U32 = 0xffff_ffff;
const MAX_VERSION = 0xff;
const CONSISTENCY_LEVELS: readonly ConsistencyLevel[] = ['crash', 'application'];

/** Client's opening: protocol version, its site id, its nonce. */
export interface HelloMessage {
  readonly type: 'HELLO';
  readonly version: number;
  readonly siteId: string;
  readonly nonce: Uint8Array;
}

/** Server's answer to HELLO; `proof` is present iff the server authenticates with a pre-shared key. */
export interface ChallengeMessage {
  readonly type: 'CHALLENGE';
  readonly version: number;
  readonly siteId: string;
  readonly nonce: Uint8Array;
  readonly proof?: Uint8Array;
}

/** Client's proof; present iff the client authenticates with a pre-shared key. */
export interface AuthMessage {
  readonly type: 'AUTH';
  readonly proof?: Uint8Array;
}

/** Server: the handshake succeeded. */
export interface WelcomeMessage {
  readonly type: 'WELCOME';
}

/** Either side: why the connection is being closed. `code` is a drkit error code. */
export interface ErrorMessage {
  readonly type: 'ERROR';
  readonly code: string;
  readonly message: string;
}

/** Sender asks which snapshots of a volume the receiver holds (one page). */
export interface ListRequest {
  readonly type: 'LIST_REQ';
  readonly requestId: number;
  readonly volumeKey: string;
  /** `nextCursor` of the previous page. */
  readonly cursor?: string;
}

/** One snapshot held by the receiver, by origin (the site that took it and its id there). */
export interface ListedSnapshot {
  readonly originSiteId: string;
  readonly originSnapshotId: string;
  /** The snapshot's id at the receiver. */
  readonly snapshotId: string;
  readonly createdMs: number;
}

/** One page of snapshots; `nextCursor` is present when more follow. */
export interface ListResponse {
  readonly type: 'LIST_RES';
  readonly requestId: number;
  readonly snapshots: readonly ListedSnapshot[];
  readonly nextCursor?: string;
}

/** The snapshot being sent, as the receiver will record it. */
export type BeginSnapshot = PortBeginRequest['snapshot'];

/** Sender opens (or resumes) a transfer session for one snapshot: ReplicationPort's BeginRequest on the wire. */
export interface BeginRequest extends PortBeginRequest {
  readonly type: 'BEGIN_REQ';
  readonly requestId: number;
}

/** Receiver: where to (re)start: ReplicationPort's BeginResponse on the wire. */
export interface BeginResponse extends PortBeginResponse {
  readonly type: 'BEGIN_RES';
  readonly requestId: number;
}

/** Sender: all blocks of these sessions were sent; commit them atomically. */
export interface CommitRequest {
  readonly type: 'COMMIT_REQ';
  readonly requestId: number;
  readonly sessionIds: readonly string[];
}

/** Receiver: the committed snapshot ids, in `sessionIds` order. */
export interface CommitResponse {
  readonly type: 'COMMIT_RES';
  readonly requestId: number;
  readonly snapshotIds: readonly string[];
}

/** Asks the peer to send snapshot `snapshotId` back (roles reverse on this connection). */
export interface PullRequest {
  readonly type: 'PULL_REQ';
  readonly requestId: number;
  readonly snapshotId: string;
  readonly baseSnapshotId?: string;
}

/** Either side abandons a session (its partial state may be kept for resume). */
export interface AbortMessage {
  readonly type: 'ABORT';
  readonly sessionId: string;
  readonly reason: string;
}

/** One snapshot named by its origin. */
export interface OriginRef {
  readonly originSiteId: string;
  readonly originSnapshotId: string;
}

/** Asks the receiver to delete its replicas of these snapshots (remote retention). Only replicas of the requester's own snapshots are deleted. */
export interface PruneRequest {
  readonly type: 'PRUNE_REQ';
  readonly requestId: number;
  readonly snapshots: readonly OriginRef[];
}

/** The receiver's ids of the replicas it deleted. */
export interface PruneResponse {
  readonly type: 'PRUNE_RES';
  readonly requestId: number;
  readonly deletedSnapshotIds: readonly string[];
}

/** Asks for the peer's status of one lineage: named directly, or as the lineage of one of its snapshots. */
export interface StatusRequest {
  readonly type: 'STATUS_REQ';
  readonly requestId: number;
  /** Exactly one of `lineage` and `snapshotId` (a snapshot id at the peer). */
  readonly lineage?: string;
  readonly snapshotId?: string;
}

/** The peer's generation of a lineage, whether it writes it, and the named snapshot's own generation. */
export interface StatusResponse {
  readonly type: 'STATUS_RES';
  readonly requestId: number;
  readonly lineage: string;
  readonly generation: number;
  readonly writableVolumeId?: string;
  /** The generation stamped on the snapshot the request named (STATUS_REQ by `snapshotId`). */
  readonly snapshotGeneration?: number;
}

/** One lineage a PROMOTE_REQ hands over: its final snapshot (origin = the requester) and the target volume. */
export interface PromoteMember {
  readonly lineage: string;
  /** The final snapshot's id at the requester (its origin id). */
  readonly originSnapshotId: string;
  /** The generation the requester wrote the lineage at; the promotion writes at a higher one. */
  readonly sourceGeneration: number;
  /** Exactly one of `volumeName` (a new clone) and `volumeId` (a volume reverted in place). */
  readonly volumeName?: string;
  readonly volumeId?: string;
}

/** The requester (the lineages' last writer) hands them over: promote all members, or none. */
export interface PromoteRequest {
  readonly type: 'PROMOTE_REQ';
  readonly requestId: number;
  readonly members: readonly PromoteMember[];
}

/** What each member became, in request order. */
export interface PromoteResponse {
  readonly type: 'PROMOTE_RES';
  readonly requestId: number;
  readonly members: readonly { readonly lineage: string; readonly generation: number; readonly volumeId: string }[];
}

/** One lineage a DEMOTE_REQ takes back: the promotion it undoes, named by the final snapshot it started from. */
export interface DemoteMember {
  readonly lineage: string;
  /** The final snapshot's id at the requester (its origin id): the promotion must have started from it. */
  readonly originSnapshotId: string;
  /** The generation the requester wrote the lineage at before the hand-over; the peer goes back to it. */
  readonly sourceGeneration: number;
}

/** The site that handed lineages over takes them back (a rolled-back migration): demote all members, or none. */
export interface DemoteRequest {
  readonly type: 'DEMOTE_REQ';
  readonly requestId: number;
  readonly members: readonly DemoteMember[];
}

/** Each member's generation at the peer after the demotion, in request order. */
export interface DemoteResponse {
  readonly type: 'DEMOTE_RES';
  readonly requestId: number;
  readonly members: readonly { readonly lineage: string; readonly generation: number }[];
}

/** Every control message. */
export type ControlMessage =
  | HelloMessage
  | ChallengeMessage
  | AuthMessage
  | WelcomeMessage
  | ErrorMessage
  | ListRequest
  | ListResponse
  | BeginRequest
  | BeginResponse
  | CommitRequest
  | CommitResponse
  | PullRequest
  | AbortMessage
  | PruneRequest
  | PruneResponse
  | StatusRequest
  | StatusResponse
  | PromoteRequest
  | PromoteResponse
  | DemoteRequest
  | DemoteResponse;

/** Names of the control message types. */
export type ControlMessageType = ControlMessage['type'];

const CONTROL_TYPES: ReadonlySet<string> = new Set<ControlMessageType>([
  'HELLO', 'CHALLENGE', 'AUTH', 'WELCOME', 'ERROR', 'LIST_REQ', 'LIST_RES', 'BEGIN_REQ', 'BEGIN_RES', 'COMMIT_REQ', 'COMMIT_RES', 'PULL_REQ', 'ABORT', 'PRUNE_REQ', 'PRUNE_RES',
  'STATUS_REQ', 'STATUS_RES', 'PROMOTE_REQ', 'PROMOTE_RES', 'DEMOTE_REQ', 'DEMOTE_RES',
]);

/** True when `type` names a control (JSON) message. */
export function isControlMessageType(type: string): type is ControlMessageType {
  return CONTROL_TYPES.has(type);
}

function requestId(f: Fields): number {
  return f.integer('requestId', 0, MAX_U32);
}

function idItem(what: string) {
  return (value: unknown, path: string): string => checkId(value, what, path);
}

function decodeSnapshot(f: Fields): BeginSnapshot {
  const fallbackReason = f.has('fallbackReason') ? f.text('fallbackReason', 0, MAX_TEXT_CHARS) : undefined;
  return {
    name: f.text('name', 1, MAX_SNAPSHOT_NAME_CHARS),
    createdMs: f.integer('createdMs', 0, Number.MAX_SAFE_INTEGER),
    consistency: f.oneOf('consistency', CONSISTENCY_LEVELS),
    ...(fallbackReason === undefined ? {} : { fallbackReason }),
    userMetadata: f.stringRecord('userMetadata'),
  };
}

/**
 * Decodes and validates the JSON payload of control message `type`.
 * @throws PROTOCOL_ERROR for anything malformed, oversized or out of bounds
 */
export function decodeControlMessage(type: ControlMessageType, payload: Uint8Array): ControlMessage {
  const f = parseJsonPayload(payload, type);
  switch (type) {
    case 'HELLO':
      return { type, version: f.integer('version', 1, MAX_VERSION), siteId: f.id('siteId'), nonce: f.hexBytes('nonce', NONCE_BYTES) };
    case 'CHALLENGE': {
      const proof = f.optionalHexBytes('proof', PROOF_BYTES);
      return { type, version: f.integer('version', 1, MAX_VERSION), siteId: f.id('siteId'), nonce: f.hexBytes('nonce', NONCE_BYTES), ...(proof === undefined ? {} : { proof }) };
    }
    case 'AUTH': {
      const proof = f.optionalHexBytes('proof', PROOF_BYTES);
      return { type, ...(proof === undefined ? {} : { proof }) };
    }
    case 'WELCOME':
      return { type };
    case 'ERROR': {
      const code = f.text('code', 1, 64);
      if (!/^[A-Z][A-Z0-9_]*$/.test(code)) shapeError(type, 'code', 'must be an upper-case error code');
      return { type, code, message: f.text('message', 0, MAX_TEXT_CHARS) };
    }
    case 'LIST_REQ': {
      const cursor = f.optionalId('cursor');
      return { type, requestId: requestId(f), volumeKey: f.id('volumeKey'), ...(cursor === undefined ? {} : { cursor }) };
    }
    case 'LIST_RES': {
      const nextCursor = f.optionalId('nextCursor');
      const snapshots = f.array('snapshots', MAX_LIST_SNAPSHOTS, (value, path) => {
        const s = new Fields(value, type, path);
        return { originSiteId: s.id('originSiteId'), originSnapshotId: s.id('originSnapshotId'), snapshotId: s.id('snapshotId'), createdMs: s.integer('createdMs', 0, Number.MAX_SAFE_INTEGER) };
      });
      return { type, requestId: requestId(f), snapshots, ...(nextCursor === undefined ? {} : { nextCursor }) };
    }
    case 'BEGIN_REQ': {
      const baseOriginSnapshotId = f.optionalId('baseOriginSnapshotId');
      const baseOriginSiteId = f.optionalId('baseOriginSiteId');
      const groupKey = f.optionalId('groupKey');
      const blockBytes = f.integer('blockBytes', MIN_BLOCK_BYTES, MAX_BLOCK_BYTES);
      if ((blockBytes & (blockBytes - 1)) !== 0) shapeError(type, 'blockBytes', 'must be a power of two');
      return {
        type,
        requestId: requestId(f),
        sessionId: f.id('sessionId'),
        volumeKey: f.id('volumeKey'),
        originSiteId: f.id('originSiteId'),
        originSnapshotId: f.id('originSnapshotId'),
        originVolumeId: f.id('originVolumeId'),
        ...(baseOriginSnapshotId === undefined ? {} : { baseOriginSnapshotId }),
        ...(baseOriginSiteId === undefined ? {} : { baseOriginSiteId }),
        byteLength: f.integer('byteLength', 0, Number.MAX_SAFE_INTEGER),
        blockBytes,
        snapshot: decodeSnapshot(f.object('snapshot')),
        ...(groupKey === undefined ? {} : { groupKey }),
      };
    }
    case 'BEGIN_RES': {
      const committedSnapshotId = f.optionalId('committedSnapshotId');
      return {
        type,
        requestId: requestId(f),
        resumeBlock: f.integer('resumeBlock', 0, Number.MAX_SAFE_INTEGER),
        baseFound: f.boolean('baseFound'),
        ...(committedSnapshotId === undefined ? {} : { committedSnapshotId }),
      };
    }
    case 'COMMIT_REQ':
      return { type, requestId: requestId(f), sessionIds: nonEmpty(f.array('sessionIds', MAX_COMMIT_SESSIONS, idItem(type)), type, 'sessionIds') };
    case 'COMMIT_RES':
      return { type, requestId: requestId(f), snapshotIds: f.array('snapshotIds', MAX_COMMIT_SESSIONS, idItem(type)) };
    case 'PULL_REQ': {
      const baseSnapshotId = f.optionalId('baseSnapshotId');
      return { type, requestId: requestId(f), snapshotId: f.id('snapshotId'), ...(baseSnapshotId === undefined ? {} : { baseSnapshotId }) };
    }
    case 'ABORT':
      return { type, sessionId: f.id('sessionId'), reason: f.text('reason', 0, MAX_TEXT_CHARS) };
    case 'PRUNE_REQ':
      return {
        type,
        requestId: requestId(f),
        snapshots: nonEmpty(
          f.array('snapshots', MAX_LIST_SNAPSHOTS, (value, path) => {
            const s = new Fields(value, type, path);
            return { originSiteId: s.id('originSiteId'), originSnapshotId: s.id('originSnapshotId') };
          }),
          type,
          'snapshots',
        ),
      };
    case 'PRUNE_RES':
      return { type, requestId: requestId(f), deletedSnapshotIds: f.array('deletedSnapshotIds', MAX_LIST_SNAPSHOTS, idItem(type)) };
    case 'STATUS_REQ': {
      const lineage = f.optionalId('lineage');
      const snapshotId = f.optionalId('snapshotId');
      if ((lineage === undefined) === (snapshotId === undefined)) shapeError(type, 'lineage', 'exactly one of lineage and snapshotId');
      return { type, requestId: requestId(f), ...(lineage === undefined ? {} : { lineage }), ...(snapshotId === undefined ? {} : { snapshotId }) };
    }
    case 'STATUS_RES': {
      const writableVolumeId = f.optionalId('writableVolumeId');
      const snapshotGeneration = f.has('snapshotGeneration') ? f.integer('snapshotGeneration', 0, MAX_GENERATION) : undefined;
      return {
        type,
        requestId: requestId(f),
        lineage: f.id('lineage'),
        generation: f.integer('generation', 0, MAX_GENERATION),
        ...(writableVolumeId === undefined ? {} : { writableVolumeId }),
        ...(snapshotGeneration === undefined ? {} : { snapshotGeneration }),
      };
    }
    case 'PROMOTE_REQ':
      return { type, requestId: requestId(f), members: nonEmpty(f.array('members', MAX_COMMIT_SESSIONS, decodePromoteMember), type, 'members') };
    case 'PROMOTE_RES':
      return {
        type,
        requestId: requestId(f),
        members: f.array('members', MAX_COMMIT_SESSIONS, (value, path) => {
          const m = new Fields(value, type, path);
          return { lineage: m.id('lineage'), generation: m.integer('generation', 0, MAX_GENERATION), volumeId: m.id('volumeId') };
        }),
      };
    case 'DEMOTE_REQ':
      return {
        type,
        requestId: requestId(f),
        members: nonEmpty(
          f.array('members', MAX_COMMIT_SESSIONS, (value, path) => {
            const m = new Fields(value, type, path);
            return { lineage: m.id('lineage'), originSnapshotId: m.id('originSnapshotId'), sourceGeneration: m.integer('sourceGeneration', 0, MAX_GENERATION) };
          }),
          type,
          'members',
        ),
      };
    case 'DEMOTE_RES':
      return {
        type,
        requestId: requestId(f),
        members: f.array('members', MAX_COMMIT_SESSIONS, (value, path) => {
          const m = new Fields(value, type, path);
          return { lineage: m.id('lineage'), generation: m.integer('generation', 0, MAX_GENERATION) };
        }),
      };
  }
}

function decodePromoteMember(value: unknown, path: string): PromoteMember {
  const m = new Fields(value, 'PROMOTE_REQ', path);
  const volumeName = m.has('volumeName') ? m.text('volumeName', 1, MAX_SNAPSHOT_NAME_CHARS) : undefined;
  const volumeId = m.optionalId('volumeId');
  if ((volumeName === undefined) === (volumeId === undefined)) shapeError('PROMOTE_REQ', `${path}.volumeName`, 'exactly one of volumeName and volumeId');
  const target = volumeName === undefined ? { volumeId: volumeId! } : { volumeName };
  return { lineage: m.id('lineage'), originSnapshotId: m.id('originSnapshotId'), sourceGeneration: m.integer('sourceGeneration', 0, MAX_GENERATION), ...target };
}

function nonEmpty<T>(items: T[], what: string, path: string): T[] {
  if (items.length === 0) shapeError(what, path, 'must not be empty');
  return items;
}

/** The JSON form of a message (byte strings as hex; the `type` travels in the frame header). */
function toJson(message: ControlMessage): Record<string, unknown> {
  const { type: _type, ...rest } = message;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(rest)) {
    if (value === undefined) continue;
    out[key] = value instanceof Uint8Array ? toHex(value) : value;
  }
  return out;
}

/**
 * Encodes a control message to its JSON payload, validating it with the same rules the
 * receiver applies (a message we would reject is never sent).
 * @throws INVALID_ARGUMENT when the message breaks a bound or its shape
 */
export function encodeControlMessage(message: ControlMessage): Uint8Array {
  let payload: Uint8Array;
  try {
    payload = utf8(JSON.stringify(toJson(message)));
  } catch (err) {
    throw new DrkitError('INVALID_ARGUMENT', `${message.type}: not JSON-serialisable`, { cause: err });
  }
  if (payload.length > MAX_CONTROL_PAYLOAD_BYTES) {
    throw new DrkitError('INVALID_ARGUMENT', `${message.type}: payload of ${payload.length} bytes exceeds ${MAX_CONTROL_PAYLOAD_BYTES}`, {
      data: { type: message.type, payloadByteLength: payload.length },
    });
  }
  try {
    decodeControlMessage(message.type, payload);
  } catch (err) {
    throw new DrkitError('INVALID_ARGUMENT', `refusing to send an invalid message: ${(err as Error).message}`, { cause: err, data: { type: message.type } });
  }
  return payload;
}
