/** The NearSync session id the Protector gives a protection domain (`pd-<id>`, 1-64 characters of [A-Za-z0-9._-]); restore points find the domain's LWS by it. */
export function nearSyncSessionId(domainId: string): string {
  return `pd-${domainId}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
}
