// The running agent for one config: opens the ledger and spool, runs one cycle of a route under
// its cross-process lock, and records how the run went. The scheduler and `sprelay once` both
// come through runRoute, so a route behaves the same whichever started it.
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import type { Config, RouteConfig } from './config.js';
import { profileWithSecrets } from './credentials.js';
import { runInbound } from './inbound.js';
import { createLogger, fileLogOf, type Logger } from './log.js';
import { runOutbound } from './outbound.js';
import { cycleSummary, emptyResult, type CycleResult, type RouteContext, type StopToken } from './route-context.js';
import { errorText, makeScrubber, type Scrub } from './secrets.js';
import { Ledger } from '../store/ledger.js';
import { RouteBusyError, RouteLock } from '../store/lock.js';
import { Spool } from '../store/spool.js';
import { createTransport } from '../transports/index.js';
import type { Transport } from '../transports/types.js';
import { weakenedChecks } from './weakened.js';

export class Agent {
  readonly ledger: Ledger;
  readonly spool: Spool;
  readonly log: Logger;
  readonly scrub: Scrub;
  private readonly stopCtl = new AbortController();
  private readonly abortCtl = new AbortController();
  private readonly running = new Map<string, Promise<CycleResult>>();
  readonly stop: StopToken;

  constructor(
    readonly config: Config,
    opts: {
      log?: Logger;
      quiet?: boolean;
      now?: () => number;
      /** Tests wrap the real transport (e.g. a sink that fails N times). */
      transportFor?: (route: RouteConfig) => Transport;
      /** Where deferred `${VAR}` secrets are read when a transport connects (default process.env). */
      env?: NodeJS.ProcessEnv;
      /** Log level instead of the config's (`-v`: debug). */
      level?: string;
      /** Where each cycle's summary line goes: the log (console and file), or the file only (`once` prints its own). */
      cycleLog?: 'all' | 'file';
    } = {},
  ) {
    // Every request in flight of every route listens to the cycle's abort signal: 16 transfers at
    // once (concurrency's cap) over several routes are more than Node's default of 10 listeners,
    // which is not a leak (each removes its listener when done) but prints a warning.
    setMaxListeners(0, this.abortCtl.signal, this.stopCtl.signal);
    const env = opts.env ?? process.env;
    this.transportFor =
      opts.transportFor ??
      ((route) => {
        const { profile, values } = profileWithSecrets(config, route, env);
        this.addSecrets(values);
        return createTransport(profile, config.station);
      });
    let scrub = makeScrubber(config.secrets);
    this.secretValues = [...config.secrets];
    this.rescrub = (values) => {
      this.secretValues.push(...values);
      scrub = makeScrubber(this.secretValues);
    };
    this.scrub = (text) => scrub(text);
    this.log =
      opts.log ??
      createLogger({
        level: opts.level ?? config.log.level,
        ...(config.log.file ? { file: config.log.file } : {}),
        maxSize: config.log.maxSize,
        keep: config.log.keep,
        quiet: opts.quiet ?? false,
      });
    this.cycleLog = opts.cycleLog === 'file' ? fileLogOf(this.log) : this.log;
    this.now = opts.now ?? Date.now;
    this.ledger = Ledger.open(join(config.dataDir, 'ledger.sqlite'), { now: this.now });
    this.spool = new Spool(config.dataDir);
    const ctl = this.stopCtl;
    this.stop = {
      get requested() {
        return ctl.signal.aborted;
      },
      signal: ctl.signal,
    };
  }

  private readonly now: () => number;
  private readonly transportFor: (route: RouteConfig) => Transport;
  private readonly secretValues: string[];
  private readonly cycleLog: Logger;
  private readonly rescrub: (values: string[]) => void;

  /** Secrets read late (a passwordFile, a variable) are scrubbed from every text from now on. */
  private addSecrets(values: string[]): void {
    const fresh = values.filter((v) => v.length >= 4 && !this.secretValues.includes(v));
    if (fresh.length) this.rescrub(fresh);
  }

  route(name: string): RouteConfig {
    const r = this.config.routes.find((x) => x.name === name);
    if (!r)
      throw new Error(
        `no route named ${JSON.stringify(name)} (routes: ${this.config.routes.map((x) => x.name).join(', ')})`,
      );
    return r;
  }

  /** Finish the file in hand, take no new one. */
  requestStop(): void {
    this.stopCtl.abort();
  }

  /** Abort transfers in flight too (second Ctrl+C). */
  abortTransfers(): void {
    this.stopCtl.abort();
    this.abortCtl.abort();
  }

  /** True while some route's cycle runs in this process. */
  get busyRoutes(): string[] {
    return [...this.running.keys()];
  }

  /** Resolves when no cycle runs in this process. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()]);
  }

  /**
   * One cycle of one route. A route never runs twice at once: a second call while one runs in
   * this process gets the same promise; another process holding the route's lock makes it skip.
   */
  runRoute(route: RouteConfig): Promise<CycleResult> {
    const inFlight = this.running.get(route.name);
    if (inFlight) return inFlight;
    const p = this.cycle(route).finally(() => this.running.delete(route.name));
    this.running.set(route.name, p);
    return p;
  }

  private async cycle(route: RouteConfig): Promise<CycleResult> {
    const result = await this.cycleOf(route);
    this.cycleLog.info(cycleSummary(result));
    return result;
  }

  private async cycleOf(route: RouteConfig): Promise<CycleResult> {
    const started = this.now();
    let lock: RouteLock;
    try {
      lock = RouteLock.acquire(this.ledger, route.name);
    } catch (err) {
      const result = emptyResult(route);
      if (err instanceof RouteBusyError) {
        // another process is doing this route's work: not an error of the route, nothing recorded
        result.skipped = err.message;
        this.log.info({ route: route.name }, `${result.skipped}; skipped this cycle`);
        return result;
      }
      result.error = this.scrub(`cannot take the route lock in the ledger: ${errorText(err)}`);
      this.log.error({ route: route.name }, result.error);
      this.recordRun(route.name, started, false, result.error);
      return result;
    }
    // a protection switched off in the config is said every cycle, not only once at start
    for (const w of weakenedChecks(route)) this.log.warn({ route: route.name }, `WARN ${w}`);
    let result: CycleResult;
    try {
      const ctx: RouteContext = {
        config: this.config,
        route,
        ledger: this.ledger,
        spool: this.spool,
        transport: this.transportFor(route),
        log: this.log,
        scrub: this.scrub,
        stop: this.stop,
        abort: this.abortCtl.signal,
        now: this.now,
      };
      result = route.direction === 'out' ? await runOutbound(ctx) : await runInbound(ctx);
    } catch (err) {
      result = emptyResult(route);
      result.error = this.scrub(errorText(err));
      this.log.error({ route: route.name }, `cycle failed: ${result.error}`);
    } finally {
      this.releaseLock(lock, route.name);
    }
    if (this.stop.requested) {
      // stopped by a person: neither the route's success nor its failure
      result.interrupted = true;
      this.recordRun(route.name, started, false, null, true);
      return result;
    }
    const ok = result.error === null && result.failed === 0 && result.dead === 0;
    this.recordRun(route.name, started, ok, result.error);
    this.log.debug({ route: route.name }, `cycle done ${JSON.stringify(result)}`);
    return result;
  }

  private releaseLock(lock: RouteLock, route: string): void {
    try {
      lock.release();
    } catch (err) {
      // a ledger that cannot write keeps the row; the next cycle of this process takes it again
      this.log.error({ route }, `could not release the route lock: ${errorText(err)}`);
    }
  }

  private recordRun(route: string, at: number, ok: boolean, error: string | null, interrupted = false): void {
    try {
      this.ledger.recordRun(route, { at, ok, error, interrupted });
    } catch (err) {
      // a full disk can refuse even this; the cycle's result still reaches the caller
      this.log.error({ route }, `could not record the run in the ledger: ${errorText(err)}`);
    }
  }

  /**
   * One cycle of the named routes (all when none named), in parallel; the office's receipts route
   * last, so that it carries the receipts of what this very run delivered.
   */
  async runOnce(names: string[] = []): Promise<CycleResult[]> {
    const routes = names.length ? names.map((n) => this.route(n)) : this.config.routes;
    const last = routes.filter((r) => r.name === this.config.receipts);
    const first = await Promise.all(routes.filter((r) => !last.includes(r)).map((r) => this.runRoute(r)));
    const then = await Promise.all(last.map((r) => this.runRoute(r)));
    return routes.map((r) => first.find((x) => x.route === r.name) ?? then.find((x) => x.route === r.name)!);
  }

  close(): void {
    this.ledger.close();
  }
}
