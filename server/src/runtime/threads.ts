// How many threads a session gets when the user leaves the choice to Kiln.
import { availableParallelism } from 'node:os';

/** Threads when the setting says 0: all cores up to 4 (more rarely helps a small decoder). */
export function automaticThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}
