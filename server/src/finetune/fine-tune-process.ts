// Runs a fine-tune in a child process: the parent (language server or CLI) relays its events,
// can cancel it (it stops within one step and keeps the best parameters), can hold it stopped while
// the user types (typing-yield.ts), and learns of a crash.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ChildStopper } from './child-stop';
import type { FineTuneEvent, FineTuneOptions, FineTuneResult } from './fine-tune';
import type { Suspendable } from './typing-yield';
import type { WorkerMessage, WorkerRequest } from './worker';

/** How long a cancelled run may take to stop before it is killed. */
const CANCEL_GRACE_MS = 60_000;

export interface FineTuneProcess extends Suspendable {
  pid: number | undefined;
  result: Promise<FineTuneResult>;
  /** Resumes a held process (it must run to stop) and asks it to stop; killed if it has not within the grace. */
  cancel(): void;
  /**
   * Holds the process stopped at the OS level (POSIX; nothing on Windows, where only its lower
   * priority remains), unless it has exited or is cancelling: a cancelled run is left to finish.
   */
  suspend(): void;
  /** Continues a held process and tells it how long it was held, so its time budget does not count it. */
  resume(): void;
}

/** dist/train-worker.js next to the bundle; the TypeScript source under tsx (tests). */
function workerEntry(): { path: string; execArgv: string[] } {
  const bundled = join(__dirname, 'train-worker.js');
  if (existsSync(bundled)) return { path: bundled, execArgv: [] };
  return { path: join(__dirname, 'worker.ts'), execArgv: ['--import', 'tsx'] };
}

export function startFineTuneProcess(options: FineTuneOptions, onEvent: (e: FineTuneEvent) => void): FineTuneProcess {
  const entry = workerEntry();
  // 'advanced' (structured clone) keeps NaN and Infinity: a diverging run's losses arrive as numbers, not null.
  const child = fork(entry.path, [], { execArgv: entry.execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced' });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let killTimer: NodeJS.Timeout | undefined;
  let cancelling = false;
  const stopper = new ChildStopper(child);
  // 'exit' (before 'close'): from here on the pid may belong to another process.
  child.on('exit', () => stopper.exited());
  const resume = () => {
    const span = stopper.continue();
    if (span && child.connected) child.send({ type: 'stopped', ...span } satisfies WorkerRequest);
  };
  const result = new Promise<FineTuneResult>((resolve, reject) => {
    let settled = false;
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'event') onEvent(m.event);
      else if (m.type === 'result') {
        settled = true;
        resolve(m.result);
      } else if (m.type === 'error') {
        settled = true;
        reject(new Error(m.message));
      }
    });
    // 'close' comes after the IPC channel has delivered every message; 'exit' can overtake the result.
    child.on('close', (code, signal) => {
      clearTimeout(killTimer);
      if (!settled)
        reject(new Error(`the training process exited (${signal ?? `code ${code}`}) before finishing; the last checkpoint can be resumed.${stderr ? `\n${stderr.trim()}` : ''}`));
    });
    child.on('error', (err) => {
      resume();
      if (!settled) reject(err);
    });
  });
  child.send({ type: 'start', options } satisfies WorkerRequest);
  return {
    pid: child.pid,
    result,
    cancel: () => {
      resume();
      if (!child.connected || cancelling) return;
      cancelling = true;
      child.send({ type: 'cancel' } satisfies WorkerRequest);
      killTimer = setTimeout(() => {
        stopper.continue(); // never killed while stopped, in case anything stopped it since
        child.kill('SIGKILL');
      }, CANCEL_GRACE_MS);
      killTimer.unref();
    },
    suspend: () => {
      if (!cancelling && child.connected) stopper.stop();
    },
    resume,
  };
}
