// When to tell the server where the user is (kiln/cursor): after the cursor has stayed put for a
// moment, once per place. Moves in quick succession (arrow keys held, typing) send nothing until they
// stop; the same place is not sent twice. vscode-free, so it is unit-tested; extension.ts wires it.
import type { CursorReason } from '../../server/src/protocol';

export interface CursorPlace {
  uri: string;
  line: number;
  character: number;
  reason: CursorReason;
}

/** How long the cursor must stay still before it is reported: a pause, not a keystroke's gap. */
export const CURSOR_IDLE_MS = 300;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class CursorReporter {
  private pending: unknown;
  private last: CursorPlace | undefined;

  constructor(
    private readonly send: (place: CursorPlace) => void,
    private readonly idleMs = CURSOR_IDLE_MS,
    private readonly timers: Timers = realTimers,
  ) {}

  /** The cursor is at `place` now: report it once it has stayed there for `idleMs`. */
  moved(place: CursorPlace): void {
    this.cancel();
    this.pending = this.timers.setTimeout(() => {
      this.pending = undefined;
      if (this.last && samePlace(this.last, place)) return;
      this.last = place;
      this.send(place);
    }, this.idleMs);
  }

  /** The document changed or closed: the same place may be worth reporting again. */
  forget(uri: string): void {
    if (this.last?.uri === uri) this.last = undefined;
  }

  cancel(): void {
    if (this.pending !== undefined) this.timers.clearTimeout(this.pending);
    this.pending = undefined;
  }

  dispose(): void {
    this.cancel();
  }
}

function samePlace(a: CursorPlace, b: CursorPlace): boolean {
  return a.uri === b.uri && a.line === b.line && a.character === b.character;
}
