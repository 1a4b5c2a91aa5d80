/** The frame type numbers of the NearSync messages: 40-47 are NearSync's (lws-messages.ts), 48-60 Metro's. */
export const LWS_FRAME_TYPE = Object.freeze({ LWS_OPEN_REQ: 40, LWS_OPEN_RES: 41, LWS_BATCH: 42, LWS_BATCH_ACK: 43, LWS_HAVE_REQ: 44, LWS_HAVE_RES: 45 } as const);
