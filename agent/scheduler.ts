// `sprelay run`: one node-cron task per route. A tick only triggers a cycle; the single-flight
// guarantee lives in Agent.runRoute (node-cron's noOverlap is reported broken: node-cron#461/#498),
// so a tick that finds its route still busy is skipped and logged, never queued.
import cron, { type ScheduledTask } from 'node-cron';
import type { Agent } from './agent.js';
import type { CycleResult } from './route-context.js';

export class Scheduler {
  private readonly tasks: ScheduledTask[] = [];
  private stopped = false;

  constructor(private readonly agent: Agent) {}

  /** Starts every route's schedule, after one immediate cycle of each (no waiting for the first tick). */
  start(opts: { runAtStart?: boolean } = {}): void {
    for (const route of this.agent.config.routes) {
      const task = cron.schedule(route.schedule, () => this.tick(route.name), { name: `sprelay:${route.name}` });
      this.tasks.push(task);
      this.agent.log.info(
        { route: route.name },
        `scheduled "${route.schedule}" (${route.direction}, profile ${route.profileName})`,
      );
      if (opts.runAtStart ?? true) this.tick(route.name);
    }
  }

  private tick(name: string): void {
    if (this.stopped) return;
    if (this.agent.busyRoutes.includes(name)) {
      this.agent.log.info({ route: name }, 'previous cycle still running; this tick skipped');
      return;
    }
    this.agent
      .runRoute(this.agent.route(name))
      .then((r: CycleResult) => this.agent.log.debug({ route: name }, `cycle finished${r.error ? ' with error' : ''}`))
      .catch((err: unknown) => this.agent.log.error({ route: name }, `cycle crashed: ${String(err)}`));
  }

  /** Stops the schedules and waits for the cycles in flight (they finish the file in hand). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.tasks) await t.destroy();
    this.agent.requestStop();
    await this.agent.idle();
  }
}
