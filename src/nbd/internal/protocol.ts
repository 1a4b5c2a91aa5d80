/**
 * Constants of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md), fixed newstyle
 * negotiation and simple replies, plus the bounds this server enforces. Every bound a
 * client can reach lives here once, so the negotiation, the transmission loop and the
 * block-size information never disagree.
 */

/** 'NBDMAGIC': first 8 bytes the server sends. */
export const NBD_INIT_MAGIC = 0x4e42444d41474943n;
/** 'IHAVEOPT': newstyle magic, also the prefix of every client option. */
export const NBD_OPTS_MAGIC = 0x49484156454f5054n;
/** Prefix of every option reply. */
export const NBD_REP_MAGIC = 0x3e889045565a9n;
/** Prefix of every transmission request. */
export const NBD_REQUEST_MAGIC = 0x25609513;
/** Prefix of every simple reply. */
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;

/** Handshake flags (server, 16 bits). */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;

/** Client flags (32 bits). */
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;
/** Every client flag this server understands; any other bit closes the connection. */
export const KNOWN_CLIENT_FLAGS = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;

/** Transmission flags (16 bits). */
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;

/** Option types. */
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;

/** Option reply types; errors have bit 31 set. */
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
const NBD_REP_FLAG_ERROR = 0x80000000;
export const NBD_REP_ERR_UNSUP = (NBD_REP_FLAG_ERROR | 1) >>> 0;
export const NBD_REP_ERR_POLICY = (NBD_REP_FLAG_ERROR | 2) >>> 0;
export const NBD_REP_ERR_INVALID = (NBD_REP_FLAG_ERROR | 3) >>> 0;
export const NBD_REP_ERR_UNKNOWN = (NBD_REP_FLAG_ERROR | 6) >>> 0;
export const NBD_REP_ERR_SHUTDOWN = (NBD_REP_FLAG_ERROR | 7) >>> 0;

/** Information types of NBD_OPT_INFO / NBD_OPT_GO. */
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

/** Request types. */
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_WRITE_ZEROES = 6;

/** Command flags. */
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;

/** Error values of a simple reply. */
export const NBD_OK = 0;
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_ESHUTDOWN = 108;

/** Byte lengths of fixed-size messages. */
export const SERVER_GREETING_BYTES = 18;
export const CLIENT_FLAGS_BYTES = 4;
export const OPTION_HEADER_BYTES = 16;
export const REQUEST_HEADER_BYTES = 28;
export const SIMPLE_REPLY_BYTES = 16;
/** Reserved zeroes after an NBD_OPT_EXPORT_NAME reply unless the client asked for none. */
export const EXPORT_NAME_ZEROES_BYTES = 124;

/**
 * Largest READ or WRITE payload: 32 MiB, the size the spec says no server should treat as
 * a denial of service; it bounds what one request holds in memory.
 */
export const MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;
/**
 * Largest option payload: 64 KiB holds the longest legal export name (4096 bytes) and any
 * realistic list of information requests; a longer option is a denial of service.
 */
export const MAX_OPTION_BYTES = 64 * 1024;
/** Longest export name the spec allows (bytes of UTF-8). */
export const MAX_NAME_BYTES = 4096;
/**
 * Options a client may send before transmission: real clients send fewer than ten; the
 * bound stops a client from holding a connection in negotiation forever.
 */
export const MAX_OPTIONS_PER_CONNECTION = 256;
/**
 * Requests one connection may have in flight: above what real clients pipeline (qemu 16,
 * nbdcopy 64), and small enough that the ordering scan over pending requests stays cheap.
 */
export const MAX_IN_FLIGHT_REQUESTS = 128;
/**
 * Payload bytes (write data held, read data being produced) one connection may have in
 * flight: two maximum-size requests; reading further requests waits below it.
 */
export const MAX_IN_FLIGHT_BYTES = 2 * MAX_PAYLOAD_BYTES;
/**
 * Reply bytes queued in the socket before the server stops reading requests: replies leave
 * at the client's pace, so this bounds memory when a client pipelines reads it drains slowly.
 */
export const MAX_QUEUED_REPLY_BYTES = 32 * 1024 * 1024;
/**
 * Largest range a TRIM or WRITE_ZEROES applies per Volume call: the export may be larger,
 * so long ranges are applied in steps of bounded work.
 */
export const ZERO_STEP_BYTES = MAX_PAYLOAD_BYTES;

/** Device reads running at once across the server: 4 measured best (see read-gate.ts). */
export const MAX_CONCURRENT_DEVICE_READS = 4;
