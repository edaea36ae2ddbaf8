// Stops and continues a child process at the OS level (SIGSTOP / SIGCONT, POSIX only), so that a
// fine-tune mid-step gives the cores and the memory bandwidth back at once, and makes sure the child
// is never left stopped by this process: while it is stopped, this process's exit and the
// terminating signals continue it first. (A SIGKILL of this process cannot be caught: the child then
// stays stopped until someone sends it SIGCONT or SIGKILL.)
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/** A span the child was held stopped, in milliseconds since the epoch (both processes read one clock). */
export interface StoppedSpan {
  from: number;
  to: number;
}

/** Signals whose default action ends this process: each continues the stopped child before it does. */
const TERMINATING_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** Epoch milliseconds at sub-millisecond resolution. */
const epochMs = () => performance.timeOrigin + performance.now();

/** Whether this platform can stop a process: Windows has no SIGSTOP (Node's kill refuses it there). */
export const CAN_STOP_PROCESSES = process.platform !== 'win32';

export class ChildStopper {
  private stoppedAt: number | undefined;
  private gone = false;
  private readonly onExit = () => this.continueNow();
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.continueNow();
    // Our listener replaced the default action: with no other listener, end as the signal would have.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };

  constructor(
    private readonly child: Pick<ChildProcess, 'pid' | 'kill'>,
    private readonly supported = CAN_STOP_PROCESSES,
  ) {}

  get stopped(): boolean {
    return this.stoppedAt !== undefined;
  }

  /** Stops the child; false when it is already stopped, gone, or the platform cannot. */
  stop(): boolean {
    if (!this.supported || this.gone || this.stoppedAt !== undefined || this.child.pid === undefined) return false;
    if (!this.child.kill('SIGSTOP')) return false;
    this.stoppedAt = epochMs();
    process.once('exit', this.onExit);
    for (const signal of TERMINATING_SIGNALS) process.once(signal, this.onSignal);
    return true;
  }

  /** Continues a stopped child; the span it was stopped, or undefined when it was not. */
  continue(): StoppedSpan | undefined {
    const from = this.stoppedAt;
    if (from === undefined) return undefined;
    this.continueNow();
    return { from, to: epochMs() };
  }

  /** The child has exited: its pid may be reused, so it is never signalled again. */
  exited(): void {
    this.gone = true;
    this.release();
  }

  private continueNow(): void {
    if (this.stoppedAt === undefined) return;
    this.release();
    if (!this.gone) this.child.kill('SIGCONT');
  }

  private release(): void {
    this.stoppedAt = undefined;
    process.removeListener('exit', this.onExit);
    for (const signal of TERMINATING_SIGNALS) process.removeListener(signal, this.onSignal);
  }
}
