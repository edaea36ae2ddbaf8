// A model swap under a typing storm, against the real server over stdio: while kiln.modelPath moves to a
// model whose load takes seconds (its safetensors header is slow to check, in the model worker), a
// keystroke storm keeps asking for inline completions, one every KEYSTROKE_INTERVAL_MS or as soon as
// the previous one came back, with a kiln/getStats after each (it reads that answer's timings). No
// request may wait more than WAIT_BOUND_MS beyond its own compute (tokenize + prefill + decode, as the
// server timed them), and the old model keeps answering with real suggestions until the swap, then the
// new one does. The session of each model lives in its own worker thread (kiln.sessionThread "worker",
// what `auto` picks for a real-size model), so neither the build nor the session creation runs on the
// server thread; the log line of the load says so and reports the longest event-loop stall.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { loadModelConfig } from '../../server/src/model/config';
import { loraModuleShapes, saveLoraAdapter } from '../../server/src/model/export/peft';
import { LORA_TARGETS } from '../../server/src/model/graph/training-graph';
import type { ServerStatus } from '../../server/src/protocol';
import { seededRandom } from '../../server/src/random';
import { ensureBuilt } from '../helpers/built-cli';
import { insertTexts, KilnClient } from '../helpers/lsp-client';
import { writeSlowToValidate } from '../helpers/slow-model';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const MAX_TOKENS = 8;
/** The bound on a request's wait beyond its own compute during a swap. */
const TARGET_WAIT_MS = 100;
/**
 * What the test asserts: the bound with KILN_SWAP_WAIT_BOUND_MS=100 on a machine with cores to
 * spare; by default a generous one, because on an oversubscribed CPU (2 cores, load 4) single requests
 * measured up to ~250 ms mid-build, while a storm without a build stayed under 25 ms there and the old
 * in-thread build held a request for the whole build (seconds).
 */
const WAIT_BOUND_MS = Number(process.env.KILN_SWAP_WAIT_BOUND_MS) || 1_000;
/** The storm's bounds: it stops this many keystrokes after the new model is ready, or at the limits. */
const KEYSTROKES_AFTER_READY = 20;
const MAX_KEYSTROKES = 5_000;
const STORM_LIMIT_MS = 120_000;
/** A load this short would not show that requests are answered during the build. */
const MIN_LOAD_MS = 1_000;
const ADAPTER_RANK = 4;
/** One keystroke per this many ms at most: five times a fast typist, and CPU left for the server and the build. */
const KEYSTROKE_INTERVAL_MS = 20;

const root = tempDir('kiln-swap-storm-');
const goodDir = join(root, 'good');
const slowDir = join(root, 'slow');
const adapterDir = join(root, 'adapter');
let client: KilnClient;

before(async () => {
  ensureBuilt();
  writeTinyCodeModel(goodDir, { endless: true }); // every answer is exactly maxTokens of '+'/'-'
  writeSlowToValidate(goodDir, slowDir);
  writeRandomAdapter(adapterDir, goodDir);
  const settings = { ...TEST_SETTINGS, modelPath: goodDir, maxTokens: MAX_TOKENS, completionMode: 'line', sessionThread: 'worker' };
  client = await KilnClient.start({ settings, initializationOptions: { cacheDir: join(root, 'cache') } });
  assert.equal(client.statuses.items.at(-1)?.state, 'ready', client.stderr);
});
after(async () => {
  await client?.dispose();
  rmSync(root, { recursive: true, force: true });
});

/** A rank-4 LoRA adapter of random A and B on every projection of `baseDir`'s model. */
function writeRandomAdapter(dir: string, baseDir: string): void {
  const rand = seededRandom(7);
  const tensors = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (const [module, [out, inDim]] of loraModuleShapes(loadModelConfig(baseDir))) {
    for (const [which, shape] of [
      ['A', [ADAPTER_RANK, inDim]],
      ['B', [out, ADAPTER_RANK]],
    ] as const) {
      tensors.set(
        `${module}.lora_${which}.weight`,
        Float32Array.from({ length: shape[0] * shape[1] }, () => rand() - 0.5),
      );
      shapes.set(`${module}.lora_${which}.weight`, [...shape]);
    }
  }
  saveLoraAdapter(dir, { baseModel: baseDir, mode: { rank: ADAPTER_RANK, alpha: 2 * ADAPTER_RANK, targets: [...LORA_TARGETS] }, tensors, shapes });
}

interface Sample {
  /** When the request was sent, in ms since the settings change. */
  sentAt: number;
  /** Whether the new model was not yet ready when it was sent. */
  duringLoad: boolean;
  kind: 'completion' | 'stats';
  wallMs: number;
  /** The server's tokenize + prefill + decode for this answer (0 when nothing was computed). */
  computeMs: number;
  suggested: boolean;
}

/** Types one character per request until the swap is over; every request and its stats read are timed. */
async function typeThroughTheSwap(uri: string, offset: number, patch: Record<string, unknown>): Promise<{ samples: Sample[]; status: ServerStatus; loadMs: number }> {
  const from = client.statuses.items.length;
  const ended = client.statuses.waitFor((s) => s.state === 'ready' || s.state === 'error', 'the slow model to load', STORM_LIMIT_MS, from);
  let endedAt: number | undefined;
  void ended.then(() => (endedAt = performance.now()));
  let answers = (await client.getStats()).answers;
  const start = performance.now();
  await client.configure(patch);
  const samples: Sample[] = [];
  let afterReady = 0;
  while (afterReady < KEYSTROKES_AFTER_READY && samples.length < 2 * MAX_KEYSTROKES && performance.now() - start < STORM_LIMIT_MS) {
    const duringLoad = endedAt === undefined;
    const due = start + (samples.length / 2) * KEYSTROKE_INTERVAL_MS;
    if (performance.now() < due) await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
    const position = await client.insert(uri, offset++, 'z'); // never what the model suggests: no typing-through
    const t0 = performance.now();
    const list = await client.complete(uri, position);
    const t1 = performance.now();
    const stats = await client.getStats();
    const t2 = performance.now();
    const computed = stats.answers > answers ? stats.last : undefined;
    answers = stats.answers;
    const computeMs = computed ? computed.tokenizeMs + computed.prefillMs + computed.decodeMs : 0;
    samples.push({ sentAt: t0 - start, duringLoad, kind: 'completion', wallMs: t1 - t0, computeMs, suggested: insertTexts(list).length > 0 });
    samples.push({ sentAt: t1 - start, duringLoad, kind: 'stats', wallMs: t2 - t1, computeMs: 0, suggested: false });
    if (!duringLoad) afterReady++;
  }
  return { samples, status: await ended, loadMs: (endedAt ?? performance.now()) - start };
}

const text = 'def main():\n    values = [1, 2, 3]\n    total = ';
let documents = 0;

/** One swap under a storm: the settings `patch` starts a load that `expected` checks the end of. */
function describeSwap(name: string, patch: Record<string, unknown>, expected: Partial<ServerStatus>): void {
  describe(`${name} under a typing storm`, () => {
    let samples: Sample[];
    let status: ServerStatus;
    let loadMs: number;

    before(async () => {
      const uri = `file:///work/storm-${++documents}.py`;
      await client.open(uri, text);
      ({ samples, status, loadMs } = await typeThroughTheSwap(uri, text.length, patch));
      const completions = samples.filter((s) => s.kind === 'completion');
      const waits = samples.map((s) => s.wallMs - s.computeMs).sort((a, b) => b - a);
      const overTarget = waits.filter((w) => w > TARGET_WAIT_MS).length;
      const loaded = client.logs.items.filter((l) => l.startsWith('loaded ')).at(-1);
      // the figures, for the report: the assertion below uses WAIT_BOUND_MS
      console.log(
        `${name}: ${completions.length} keystrokes (${completions.filter((s) => s.duringLoad).length} during a ${loadMs.toFixed(0)} ms load); ` +
          `worst waits beyond compute ${waits
            .slice(0, 3)
            .map((w) => w.toFixed(0))
            .join(', ')} ms; ${overTarget} of ${samples.length} requests over ${TARGET_WAIT_MS} ms; ${loaded}`,
      );
    });

    it('the new model loads, and the load took long enough to type through', () => {
      assert.equal(status.state, 'ready', status.message);
      for (const [key, value] of Object.entries(expected)) assert.equal(status[key as keyof ServerStatus], value, key);
      assert.ok(loadMs >= MIN_LOAD_MS, `the load took ${loadMs.toFixed(0)} ms (at least ${MIN_LOAD_MS} ms expected)`);
    });

    it(`no request waits more than ${WAIT_BOUND_MS} ms beyond its own compute`, () => {
      const late = samples.filter((s) => s.wallMs - s.computeMs > WAIT_BOUND_MS);
      const shown = late.map((s) => `${s.kind} sent at ${s.sentAt.toFixed(0)} ms: ${s.wallMs.toFixed(0)} ms wall, ${s.computeMs.toFixed(0)} ms compute`);
      assert.deepEqual(shown, []);
    });

    it('completions keep being computed throughout the build, not held until it ends', () => {
      const during = samples.filter((s) => s.kind === 'completion' && s.duringLoad);
      assert.ok(during.length >= 10, `${during.length} keystrokes during the load`);
      // at most one request straddles the swap (its slot came from the old weights: it answers empty)
      const empty = during.filter((s) => !s.suggested);
      assert.ok(empty.length <= 1, `${empty.length} of ${during.length} keystrokes during the load got no suggestion`);
      const lastDuring = during.at(-1)!;
      assert.ok(
        loadMs - lastDuring.sentAt < lastDuring.wallMs + WAIT_BOUND_MS + KEYSTROKE_INTERVAL_MS,
        `the last keystroke during the load was sent at ${lastDuring.sentAt.toFixed(0)} ms of ${loadMs.toFixed(0)}`,
      );
    });

    it('after the swap the new model answers every keystroke', () => {
      const afterSwap = samples.filter((s) => s.kind === 'completion' && !s.duringLoad);
      assert.equal(afterSwap.length, KEYSTROKES_AFTER_READY);
      assert.ok(
        afterSwap.every((s) => s.suggested && s.computeMs > 0),
        'every keystroke after the swap was computed',
      );
    });

    it('reports what the load cost the server thread: nothing but the longest stall (the session was created in its worker)', () => {
      const loaded = client.logs.items.filter((l) => l.startsWith('loaded slow:')).at(-1);
      assert.match(
        loaded ?? '',
        /^loaded slow: graph built in \d+ ms in the model worker; session created in \d+ ms in its own worker thread; longest event-loop stall during the load \d+ ms$/,
      );
    });
  });
}

describeSwap('a kiln.modelPath swap', { modelPath: slowDir }, { model: 'slow' });
// the same folder with an adapter: the header is checked and the weights merged again, the tokenizer reused
describeSwap('a kiln.adapterPath swap', { adapterPath: adapterDir }, { model: 'slow', adapter: 'adapter' });
