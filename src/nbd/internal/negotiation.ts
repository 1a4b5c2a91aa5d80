/**
 * The NBD handshake, fixed newstyle: greeting, client flags, then options until the
 * client selects an export (NBD_OPT_GO or NBD_OPT_EXPORT_NAME) or leaves. Every option
 * this server does not implement is answered NBD_REP_ERR_UNSUP and the next one is read;
 * a violation the protocol cannot answer (bad magic, unknown client flags, an oversized
 * option, an unknown name with NBD_OPT_EXPORT_NAME) ends the connection with PROTOCOL_ERROR.
 */
import type net from 'node:net';
import { DrkitError, isDrkitError } from '../../core/errors.js';
import type { SnapshotTree } from '../../snapshot/index.js';
import { findNbdExport, listNbdExports, type NbdCatalogOptions, type NbdExport } from '../export-catalog.js';
import {
  decodeInfoRequest,
  decodeName,
  decodeOptionHeader,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoText,
  encodeOptionReply,
  encodeServerEntry,
} from './codec.js';
import { openExport, transmissionFlagsOf, type OpenedExport } from './open-export.js';
import {
  CLIENT_FLAGS_BYTES,
  KNOWN_CLIENT_FLAGS,
  MAX_OPTION_BYTES,
  MAX_OPTIONS_PER_CONNECTION,
  MAX_PAYLOAD_BYTES,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_NAME,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_SERVER,
  OPTION_HEADER_BYTES,
} from './protocol.js';
import type { SocketReader } from './socket-reader.js';

/** What the handshake needs from the server. */
export interface NegotiationContext {
  readonly socket: net.Socket;
  readonly reader: SocketReader;
  readonly tree: SnapshotTree;
  readonly catalog: NbdCatalogOptions;
  /** The export an empty name selects, if any. */
  readonly defaultExport: string | undefined;
}

/** How the handshake ended: an export to serve, or nothing (the client left or aborted). */
export type NegotiationResult = OpenedExport | undefined;

/**
 * Runs the handshake on a fresh connection.
 * @throws PROTOCOL_ERROR for a violation that closes the connection, CONNECTION_LOST when it breaks
 */
export async function negotiate(ctx: NegotiationContext): Promise<NegotiationResult> {
  const { socket, reader } = ctx;
  socket.write(encodeGreeting(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
  const flagBytes = await reader.read(CLIENT_FLAGS_BYTES);
  if (flagBytes === undefined) return undefined;
  const clientFlags = flagBytes.readUInt32BE(0);
  if ((clientFlags & ~KNOWN_CLIENT_FLAGS) !== 0) {
    throw new DrkitError('PROTOCOL_ERROR', `NBD client sent unknown client flags 0x${clientFlags.toString(16)}`, { data: { clientFlags } });
  }
  const noZeroes = (clientFlags & NBD_FLAG_C_NO_ZEROES) !== 0;
  for (let count = 0; ; count++) {
    const headerBytes = await reader.read(OPTION_HEADER_BYTES);
    if (headerBytes === undefined) return undefined;
    if (count >= MAX_OPTIONS_PER_CONNECTION) {
      throw new DrkitError('PROTOCOL_ERROR', `NBD client sent more than ${MAX_OPTIONS_PER_CONNECTION} options`, { data: { limit: MAX_OPTIONS_PER_CONNECTION } });
    }
    const header = decodeOptionHeader(headerBytes);
    if (!header.magicOk) throw new DrkitError('PROTOCOL_ERROR', 'NBD client option does not start with IHAVEOPT');
    if (header.payloadBytes > MAX_OPTION_BYTES) {
      throw new DrkitError('PROTOCOL_ERROR', `NBD option ${header.option} carries ${header.payloadBytes} bytes (limit ${MAX_OPTION_BYTES})`, {
        data: { option: header.option, payloadBytes: header.payloadBytes, limit: MAX_OPTION_BYTES },
      });
    }
    const payload = await reader.read(header.payloadBytes);
    if (payload === undefined) throw new DrkitError('CONNECTION_LOST', 'NBD client closed the connection inside an option');
    const reply = (type: number, data?: Uint8Array): void => {
      socket.write(encodeOptionReply(header.option, type, data));
    };
    const fail = (type: number, message: string): void => reply(type, Buffer.from(message, 'utf8'));

    switch (header.option) {
      case NBD_OPT_EXPORT_NAME: {
        const name = decodeName(payload);
        const entry = name === undefined ? undefined : lookup(ctx, name);
        // This option has no error reply: the protocol's answer to a bad name is to hang up.
        if (entry === undefined) throw new DrkitError('PROTOCOL_ERROR', `NBD_OPT_EXPORT_NAME: no export named "${name ?? '(invalid)'}"`, { data: { name } });
        const opened = await openExport(ctx.tree, entry);
        socket.write(encodeExportNameReply(entry.byteLength, opened.transmissionFlags, !noZeroes));
        return opened;
      }
      case NBD_OPT_ABORT:
        reply(NBD_REP_ACK);
        return undefined;
      case NBD_OPT_LIST:
        if (payload.length !== 0) {
          fail(NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
          break;
        }
        for (const e of listNbdExports(ctx.tree, ctx.catalog)) reply(NBD_REP_SERVER, encodeServerEntry(e.name, e.description));
        reply(NBD_REP_ACK);
        break;
      case NBD_OPT_INFO:
      case NBD_OPT_GO: {
        const request = decodeInfoRequest(payload);
        if (request === undefined) {
          fail(NBD_REP_ERR_INVALID, 'malformed NBD_OPT_INFO/NBD_OPT_GO request');
          break;
        }
        const entry = lookup(ctx, request.name);
        if (entry === undefined) {
          fail(NBD_REP_ERR_UNKNOWN, `no export named "${request.name}"`);
          break;
        }
        let opened: OpenedExport | undefined;
        if (header.option === NBD_OPT_GO) {
          try {
            opened = await openExport(ctx.tree, entry);
          } catch (err) {
            if (!isDrkitError(err, 'NOT_FOUND')) throw err;
            fail(NBD_REP_ERR_UNKNOWN, `export "${entry.name}" was deleted`);
            break;
          }
        }
        for (const info of infoReplies(entry, request.infoTypes)) reply(NBD_REP_INFO, info);
        reply(NBD_REP_ACK);
        if (opened !== undefined) return opened;
        break;
      }
      default:
        // Structured replies, TLS, metadata contexts and anything newer: simple replies only.
        fail(NBD_REP_ERR_UNSUP, `option ${header.option} is not supported by this server`);
    }
  }
}

function lookup(ctx: NegotiationContext, name: string): NbdExport | undefined {
  const wanted = name === '' ? ctx.defaultExport : name;
  return wanted === undefined ? undefined : findNbdExport(ctx.tree, wanted, ctx.catalog);
}

/**
 * The NBD_REP_INFO payloads for an export: always NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE
 * (minimum 1: any byte range works; preferred: the volume's block, below which a write is
 * a read-modify-write; maximum: the payload bound), name and description when asked.
 */
function infoReplies(entry: NbdExport, infoTypes: readonly number[]): Buffer[] {
  const out = [encodeInfoExport(entry.byteLength, transmissionFlagsOf(entry)), encodeInfoBlockSize(1, entry.blockBytes, MAX_PAYLOAD_BYTES)];
  if (infoTypes.includes(NBD_INFO_NAME)) out.push(encodeInfoText(NBD_INFO_NAME, entry.name));
  if (infoTypes.includes(NBD_INFO_DESCRIPTION)) out.push(encodeInfoText(NBD_INFO_DESCRIPTION, entry.description));
  return out;
}
