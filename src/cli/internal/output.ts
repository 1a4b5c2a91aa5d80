/**
 * Output of the `drkit` command. Human mode: results on stdout, progress bars on stderr
 * when it is a TTY (cli-progress). `--json` mode: one JSON object per line on stdout,
 * each with a `type` ("result", "volume", "snapshot", "progress", "error", ...), so a
 * script reads a stream of events and never parses prose.
 */
import cliProgress from 'cli-progress';

/**
 * Shortest interval between two JSON progress lines: 250 ms keeps a 1 GiB import to a few
 * dozen lines while a watching script still sees movement every quarter second.
 */
const JSON_PROGRESS_INTERVAL_MS = 250;
const MiB = 1024 * 1024;

/** A progress sink for one long operation. */
export interface Progress {
  update(completedBytes: number, phase?: string): void;
  /** Ends the bar (or emits the final JSON line). */
  done(): void;
}

/** Where a command's output goes. */
export class Output {
  readonly json: boolean;
  readonly #stdout: NodeJS.WriteStream;
  readonly #stderr: NodeJS.WriteStream;

  constructor(json: boolean, stdout: NodeJS.WriteStream = process.stdout, stderr: NodeJS.WriteStream = process.stderr) {
    this.json = json;
    this.#stdout = stdout;
    this.#stderr = stderr;
  }

  /** One record: a JSON line of `{ type, ...fields }`, or the human text. */
  emit(type: string, fields: Record<string, unknown>, human: string | undefined): void {
    if (this.json) this.#stdout.write(`${JSON.stringify({ type, ...fields })}\n`);
    else if (human !== undefined) this.#stdout.write(`${human}\n`);
  }

  /** A human-only note on stderr (nothing in JSON mode). */
  note(text: string): void {
    if (!this.json) this.#stderr.write(`${text}\n`);
  }

  /** The failure line: `error CODE: message` and a hint (human, stderr) or a JSON `error` line (stdout). */
  error(code: string, message: string, hint: string | undefined, exitCode: number): void {
    if (this.json) {
      this.#stdout.write(`${JSON.stringify({ type: 'error', code, message, ...(hint === undefined ? {} : { hint }), exitCode })}\n`);
      return;
    }
    this.#stderr.write(`error ${code}: ${message}\n${hint === undefined ? '' : `hint: ${hint}\n`}`);
  }

  /** Progress of `label` over `totalBytes`: a bar on a TTY, JSON lines with --json, else silent. */
  progress(label: string, totalBytes: number): Progress {
    if (this.json) {
      let lastMs = 0;
      let last = { completedBytes: 0, phase: 'start' };
      const line = (completedBytes: number, phase: string): void => {
        this.#stdout.write(`${JSON.stringify({ type: 'progress', operation: label, phase, completedBytes, totalBytes })}\n`);
      };
      return {
        update: (completedBytes, phase = 'copy') => {
          last = { completedBytes, phase };
          const now = Date.now();
          if (now - lastMs < JSON_PROGRESS_INTERVAL_MS) return;
          lastMs = now;
          line(completedBytes, phase);
        },
        done: () => line(last.completedBytes, 'done'),
      };
    }
    if (!this.#stderr.isTTY) return { update: () => undefined, done: () => undefined };
    const bar = new cliProgress.SingleBar(
      {
        stream: this.#stderr,
        format: `${label} [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB | {speed} MB/s | {phase}`,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    const startMs = Date.now();
    const fields = (completedBytes: number, phase: string) => ({
      // Not `value`/`total`: cli-progress fills those itself with the raw byte counts.
      doneMiB: (completedBytes / MiB).toFixed(0),
      totalMiB: (totalBytes / MiB).toFixed(0),
      speed: (completedBytes / 1e6 / Math.max(0.001, (Date.now() - startMs) / 1000)).toFixed(0),
      phase,
    });
    bar.start(Math.max(1, totalBytes), 0, fields(0, 'start'));
    return {
      update: (completedBytes, phase = 'copy') => bar.update(completedBytes, fields(completedBytes, phase)),
      done: () => bar.stop(),
    };
  }
}

/** "12.3 MiB". */
export function mib(byteLength: number): string {
  return `${(byteLength / MiB).toFixed(1)} MiB`;
}
