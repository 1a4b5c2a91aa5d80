/** Waiting for the shutdown signals of the long-running commands (serve, protect). */

/** Resolves with the first SIGINT or SIGTERM; the handlers are removed then, so a second signal kills as usual. */
export function nextShutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handler = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
      resolve(signal);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}
