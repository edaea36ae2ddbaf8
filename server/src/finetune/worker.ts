// The training child process: runs one fine-tune at a lower OS priority (so completions in the
// server stay responsive) and reports events to its parent over IPC.
import { setPriority } from 'node:os';
import type { StoppedSpan } from './child-stop';
import { type FineTuneEvent, type FineTuneOptions, type FineTuneResult, runFineTune } from './fine-tune';
import { StoppedTime } from './stopped-time';

/** `stopped`: the parent held this process stopped for that span (while the user typed). */
export type WorkerRequest = { type: 'start'; options: FineTuneOptions } | { type: 'cancel' } | ({ type: 'stopped' } & StoppedSpan);
export type WorkerMessage = { type: 'event'; event: FineTuneEvent } | { type: 'result'; result: FineTuneResult } | { type: 'error'; message: string };

/** Resolves once the message is written to the channel: a large result must not be cut off by the disconnect. */
const send = (m: WorkerMessage) => new Promise<void>((resolve) => (process.send ? process.send(m, undefined, {}, () => resolve()) : resolve()));
const abort = new AbortController();
const stopped = new StoppedTime();

try {
  setPriority(0, 10); // "nice" 10: training yields the CPU to the editor and the language server
} catch {
  // not permitted on this platform: run at normal priority
}

process.on('message', (m: WorkerRequest) => {
  if (m.type === 'cancel') abort.abort(new Error('cancelled'));
  if (m.type === 'stopped') stopped.add(m);
  if (m.type !== 'start') return;
  runFineTune(m.options, (event) => void send({ type: 'event', event }), abort.signal, stopped)
    .then((result) => send({ type: 'result', result }))
    .catch((err: unknown) => send({ type: 'error', message: (err as Error).message ?? String(err) }))
    .finally(() => process.disconnect?.());
});
// The parent going away (editor closed) ends the run; the last checkpoint allows a resume.
process.on('disconnect', () => abort.abort(new Error('parent exited')));
