// The fine-tune's yield to typing, on a fake clock and a fake process: a burst of requests stops the
// process once, it resumes one grace after the last request ends (not before, not per request), and
// it is never left stopped — detached, switched off and disposed all resume it. ChildStopper (the OS
// level) is checked against a recording fake child: stop once, continue once with the span, and
// nothing signalled after the child has exited.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChildStopper } from '../../server/src/finetune/child-stop';
import { StoppedTime } from '../../server/src/finetune/stopped-time';
import { type Suspendable, TypingYield, type YieldTimers } from '../../server/src/finetune/typing-yield';

/** Timers that fire only when the test advances the clock. */
class FakeClock implements YieldTimers {
  now = 0;
  private timers = new Map<number, { at: number; run: () => void }>();
  private next = 0;

  set(run: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.now + ms, run });
    return id;
  }

  clear(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.timers].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].run();
    }
    this.now = until;
  }
}

/** Records each call with the fake clock's time; `stopped` mirrors what an OS would hold. */
class FakeProcess implements Suspendable {
  calls: string[] = [];
  stopped = false;

  constructor(private readonly clock: FakeClock) {}

  suspend(): void {
    this.calls.push(`stop@${this.clock.now}`);
    this.stopped = true;
  }

  resume(): void {
    this.calls.push(`cont@${this.clock.now}`);
    this.stopped = false;
  }
}

const GRACE = 400;

function setup(enabled = true) {
  const clock = new FakeClock();
  const proc = new FakeProcess(clock);
  const typing = new TypingYield({ graceMs: GRACE, timers: clock, enabled });
  return { clock, proc, typing };
}

/** A request that runs `ms` on the fake clock. */
function request(typing: TypingYield, clock: FakeClock, ms: number): void {
  const done = typing.begin();
  clock.advance(ms);
  done();
}

describe('TypingYield', () => {
  it('stops the process once for a burst of keystrokes and resumes it one grace after the last', () => {
    const { clock, proc, typing } = setup();
    typing.attach(proc);
    for (let i = 0; i < 20; i++) {
      request(typing, clock, 60);
      clock.advance(150); // the next keystroke comes well within the grace
    }
    assert.deepEqual(proc.calls, ['stop@0'], 'one stop for 20 keystrokes, still held');
    const lastEnd = 20 * 210 - 150;
    clock.advance(GRACE - 150 - 1);
    assert.equal(proc.stopped, true, 'held until the grace has passed');
    clock.advance(1);
    assert.deepEqual(proc.calls, ['stop@0', `cont@${lastEnd + GRACE}`]);
  });

  it('keeps holding while overlapping requests are in flight, and times the grace from the last one to end', () => {
    const { clock, proc, typing } = setup();
    typing.attach(proc);
    const a = typing.begin();
    clock.advance(10);
    const b = typing.begin();
    clock.advance(10);
    a();
    a(); // a second call of the same end counts once
    clock.advance(GRACE * 3);
    assert.equal(proc.stopped, true, 'b is still in flight');
    b();
    clock.advance(GRACE);
    assert.deepEqual(proc.calls, ['stop@0', `cont@${20 + GRACE * 3 + GRACE}`]);
  });

  it('a keystroke after the grace stops it again: one stop per burst, not one per request', () => {
    const { clock, proc, typing } = setup();
    typing.attach(proc);
    request(typing, clock, 50);
    clock.advance(GRACE + 500);
    request(typing, clock, 50);
    request(typing, clock, 50);
    clock.advance(GRACE);
    assert.deepEqual(proc.calls, ['stop@0', `cont@${50 + GRACE}`, `stop@${50 + GRACE + 500}`, `cont@${50 + GRACE + 500 + 100 + GRACE}`]);
  });

  it('holds a process attached while a request is in flight, and does nothing with none attached', () => {
    const { clock, proc, typing } = setup();
    request(typing, clock, 30); // no fine-tune running
    const done = typing.begin();
    typing.attach(proc);
    assert.deepEqual(proc.calls, ['stop@30']);
    done();
    clock.advance(GRACE);
    assert.equal(proc.stopped, false);
  });

  it('resumes on detach, when switched off, and on dispose; holds nothing switched off or disposed', () => {
    const { clock, proc, typing } = setup();
    const detach = typing.attach(proc);
    typing.begin();
    detach(); // the run ended mid-request
    assert.deepEqual(proc.calls, ['stop@0', 'cont@0']);

    typing.attach(proc);
    typing.begin();
    assert.equal(proc.stopped, true);
    typing.setEnabled(false);
    assert.equal(proc.stopped, false, 'switching it off resumes at once');
    request(typing, clock, 10);
    clock.advance(GRACE);
    assert.deepEqual(proc.calls, ['stop@0', 'cont@0', 'stop@0', 'cont@0'], 'switched off: no stop');

    typing.setEnabled(true);
    typing.begin();
    assert.equal(proc.stopped, true);
    typing.dispose();
    assert.equal(proc.stopped, false, 'dispose resumes');
    typing.attach(proc);
    request(typing, clock, 10);
    assert.equal(proc.stopped, false, 'disposed: nothing is held again');
  });

  it('an old detach does not detach the process attached after it', () => {
    const { proc, typing } = setup();
    const clock2 = new FakeClock();
    const other = new FakeProcess(clock2);
    const detachFirst = typing.attach(other);
    typing.attach(proc);
    detachFirst();
    typing.begin();
    assert.equal(proc.stopped, true);
    assert.equal(other.stopped, false);
  });

  it('off by setting from the start: requests never stop the process', () => {
    const { clock, proc, typing } = setup(false);
    typing.attach(proc);
    request(typing, clock, 100);
    assert.deepEqual(proc.calls, []);
  });
});

describe('ChildStopper', () => {
  const fakeChild = () => {
    const signals: string[] = [];
    const kill = (signal?: NodeJS.Signals | number) => {
      signals.push(String(signal));
      return true;
    };
    return { signals, child: { pid: 12345, kill } };
  };

  it('stops once, continues once with the span stopped, and unhooks its exit guard', () => {
    const { signals, child } = fakeChild();
    const stopper = new ChildStopper(child, true);
    const exitListeners = process.listenerCount('exit');
    assert.equal(stopper.stop(), true);
    assert.equal(stopper.stop(), false, 'already stopped');
    assert.equal(process.listenerCount('exit'), exitListeners + 1, 'continued on exit while stopped');
    const span = stopper.continue();
    assert.ok(span && span.to >= span.from);
    assert.equal(stopper.continue(), undefined, 'not stopped');
    assert.deepEqual(signals, ['SIGSTOP', 'SIGCONT']);
    assert.equal(process.listenerCount('exit'), exitListeners);
    assert.equal(process.listenerCount('SIGTERM'), 0);
  });

  it('continues the child when this process exits while it is stopped', () => {
    const { signals, child } = fakeChild();
    const stopper = new ChildStopper(child, true);
    stopper.stop();
    const guards = process.listeners('exit').slice(-1);
    for (const guard of guards) (guard as (code: number) => void)(0);
    assert.deepEqual(signals, ['SIGSTOP', 'SIGCONT']);
    assert.equal(stopper.stopped, false);
  });

  it('never signals a child that has exited, nor on a platform without SIGSTOP', () => {
    const { signals, child } = fakeChild();
    const stopper = new ChildStopper(child, true);
    stopper.stop();
    stopper.exited();
    assert.equal(stopper.continue(), undefined);
    assert.equal(stopper.stop(), false);
    assert.deepEqual(signals, ['SIGSTOP']);
    const windows = fakeChild();
    assert.equal(new ChildStopper(windows.child, false).stop(), false);
    assert.deepEqual(windows.signals, []);
  });
});

describe('StoppedTime', () => {
  it('counts only the time not stopped, whenever a span is reported', () => {
    const stopped = new StoppedTime();
    const origin = performance.timeOrigin;
    // a span of 300 ms inside [1000, 2000], and one of 100 ms straddling its end
    stopped.add({ from: origin + 1200, to: origin + 1500 });
    stopped.add({ from: origin + 1950, to: origin + 2050 });
    assert.equal(stopped.activeMs(1000, 2000), 1000 - 300 - 50);
    assert.equal(stopped.activeMs(0, 1000), 1000);
    assert.equal(stopped.activeMs(1300, 1400), 0);
    assert.equal(stopped.totalMs, 400);
  });
});
