// A process's scheduler state as Linux reports it in /proc/<pid>/stat ('R' running, 'S' sleeping,
// 'T' stopped, …), and the child processes of a process, for the tests that check that the
// fine-tune process is really stopped while the user types.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** The state field, read after the command name (which may hold spaces and parentheses). */
export function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0]!;
}

/** Polls until `pid`'s state satisfies `ok` (signals are delivered asynchronously), or fails naming `what`. */
export async function waitForState(pid: number, ok: (state: string) => boolean, what: string, timeoutMs = 5000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const state = processState(pid);
    if (ok(state)) return state;
    if (Date.now() > until) assert.fail(`process ${pid} is in state ${state}, not ${what}`);
    await sleep(10);
  }
}

/** The pids whose parent is `parent` and whose command line contains `marker`. */
export function childProcesses(parent: number, marker: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === parent && readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false; // exited while listed
      }
    })
    .map(Number);
}
