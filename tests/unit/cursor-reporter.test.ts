// The client's cursor reports (kiln/cursor): sent once the cursor stayed put for the idle time, not
// for moves in quick succession, not twice for the same place unless its document changed.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { type CursorPlace, CursorReporter, type Timers } from '../../client/src/cursor-reporter';

/** Timers run by hand: `tick(ms)` fires every timer due by then. */
function manualTimers() {
  let now = 0;
  const due = new Map<number, { at: number; fn: () => void }>();
  let next = 1;
  const timers: Timers = {
    setTimeout: (fn, ms) => {
      due.set(next, { at: now + ms, fn });
      return next++;
    },
    clearTimeout: (handle) => due.delete(handle as number),
  };
  const tick = (ms: number) => {
    now += ms;
    for (const [id, t] of [...due]) {
      if (t.at > now) continue;
      due.delete(id);
      t.fn();
    }
  };
  return { timers, tick };
}

const place = (line: number, character: number, reason: CursorPlace['reason'] = 'move'): CursorPlace => ({ uri: 'file:///a.ts', line, character, reason });

it('reports a cursor once it stayed put, the last of quick moves only, and the same place once', () => {
  const sent: CursorPlace[] = [];
  const { timers, tick } = manualTimers();
  const reporter = new CursorReporter((p) => sent.push(p), 300, timers);
  reporter.moved(place(1, 0, 'focus'));
  tick(100);
  reporter.moved(place(1, 1));
  tick(100);
  reporter.moved(place(2, 4));
  tick(299);
  assert.deepEqual(sent, [], 'still moving');
  tick(1);
  assert.deepEqual(sent, [place(2, 4)]);
  reporter.moved(place(2, 4));
  tick(300);
  assert.equal(sent.length, 1, 'the same place is not sent again');
  reporter.forget('file:///a.ts');
  reporter.moved(place(2, 4));
  tick(300);
  assert.equal(sent.length, 2, 'after an edit it is');
  reporter.moved(place(3, 0));
  reporter.dispose();
  tick(1000);
  assert.equal(sent.length, 2, 'nothing after dispose');
});
