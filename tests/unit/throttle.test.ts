// throttle: the first call runs at once, later ones at most every `ms`, the latest args trail.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { throttle } from '../../server/src/telemetry/throttle';

describe('throttle', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  it('runs the first call at once and the latest of a burst once the window closes', () => {
    const calls: number[] = [];
    const push = throttle((n: number) => calls.push(n), 100);
    push(1);
    push(2);
    push(3);
    assert.deepEqual(calls, [1]);
    mock.timers.tick(99);
    assert.deepEqual(calls, [1]);
    mock.timers.tick(1);
    assert.deepEqual(calls, [1, 3]);
    mock.timers.tick(100); // nothing pending: the window closes quietly
    assert.deepEqual(calls, [1, 3]);
    push(4); // idle again: runs at once
    assert.deepEqual(calls, [1, 3, 4]);
  });

  it('never runs more often than once per window under steady calls', () => {
    const runAt: number[] = [];
    let now = 0;
    const push = throttle(() => runAt.push(now), 100);
    while (now < 1000) {
      push();
      now += 10;
      mock.timers.tick(10);
    }
    // Calls at 0, 10, …, 990: runs at 0, 100, …, 900, and the trailing call at 1000.
    assert.deepEqual(
      runAt,
      Array.from({ length: 11 }, (_, i) => i * 100),
    );
  });

  it('cancel drops the pending call; flush runs it now', () => {
    const calls: number[] = [];
    const push = throttle((n: number) => calls.push(n), 100);
    push(1);
    push(2);
    push.cancel();
    mock.timers.tick(500);
    assert.deepEqual(calls, [1]);
    push(3);
    push(4);
    push.flush();
    assert.deepEqual(calls, [1, 3, 4]);
    push(5);
    mock.timers.tick(100);
    assert.deepEqual(calls, [1, 3, 4, 5]);
  });
});
