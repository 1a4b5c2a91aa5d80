/**
 * What every command gets: the global options (`--site`, `--json`), the output, and
 * `withSite`, which opens the site for the command and always closes it (flushing).
 */
import { DrkitError } from '../../core/index.js';
import { LocalSite, type LocalSiteOptions } from '../../local/index.js';
import { Output } from './output.js';

/** Environment variable naming the site directory when `--site` is absent. */
export const SITE_ENV = 'DRKIT_SITE';

/** The global options as commander parses them. */
export interface GlobalOptions {
  site?: string;
  json?: boolean;
}

/** A command's view of the invocation. */
export class CliContext {
  readonly out: Output;
  readonly #site: string | undefined;

  constructor(options: GlobalOptions) {
    this.out = new Output(options.json === true);
    this.#site = options.site ?? process.env[SITE_ENV];
  }

  /** The site directory. @throws INVALID_ARGUMENT when neither --site nor DRKIT_SITE names one */
  siteDir(): string {
    if (this.#site === undefined || this.#site === '') {
      throw new DrkitError('INVALID_ARGUMENT', `no site directory: pass --site DIR or set ${SITE_ENV}`);
    }
    return this.#site;
  }

  /** Opens the site, runs `fn`, and closes the site (flushing) whether `fn` succeeds or not. */
  async withSite<T>(fn: (site: LocalSite) => Promise<T>, options: Omit<LocalSiteOptions, 'dir'> = {}): Promise<T> {
    const site = await LocalSite.open({ ...options, dir: this.siteDir() });
    let result: T;
    try {
      result = await fn(site);
    } catch (err) {
      await site.close().catch(() => undefined); // the command's failure is the one to report
      throw err;
    }
    await site.close();
    return result;
  }
}
