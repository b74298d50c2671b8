// What the bench started or made, undone on every way out: a normal end, a failed run (a
// mismatch, a server that will not start), Ctrl+C, SIGTERM, or an uncaught error. Steps are
// synchronous (they run from signal and exit handlers too), newest first, each once.

import type { ChildProcess } from 'node:child_process';

type Step = { what: string; fn: () => void };

class Cleanup {
  private steps: Step[] = [];
  private installed = false;
  private readonly children = new Set<ChildProcess>();

  /**
   * A command being measured, spawned `detached` (its own process group, so that GNU time's
   * child and a script's commands go with it): stopped first if the bench ends while it runs.
   */
  track(child: ChildProcess): void {
    this.install();
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  add(what: string, fn: () => void): void {
    this.install();
    this.steps.push({ what, fn });
  }

  /** Runs every step (newest first); a failing step is reported and the others still run. */
  runAll(): void {
    for (const child of this.children) {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    this.children.clear();
    const steps = this.steps.reverse();
    this.steps = [];
    for (const s of steps) {
      try {
        s.fn();
      } catch (err) {
        process.stderr.write(`bench: cleanup "${s.what}" failed: ${(err as Error).message}\n`);
      }
    }
  }

  private install(): void {
    if (this.installed) return;
    this.installed = true;
    process.on('exit', () => this.runAll());
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
      ['SIGHUP', 129],
    ] as const) {
      process.on(signal, () => {
        process.stderr.write(`\nbench: ${signal}: stopping the servers and removing the temp folders\n`);
        this.runAll();
        process.exit(code);
      });
    }
  }
}

export const cleanup = new Cleanup();
