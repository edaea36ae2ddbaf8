// The batched-decode proof the runtime tests share: N slots stepped together through one server step
// per token, one session run of batch N each, every slot's logits equal to a lone decode of its prompt.
import assert from 'node:assert/strict';
import type { DecoderSession } from '../../server/src/runtime/decoder-session';
import type { Slot } from '../../server/src/runtime/generator';
import type { InferenceServer } from '../../server/src/runtime/inference-server';
import type { CountedSession } from './counting-runner';
import { maxAbsDiff } from './tiny-session';

export interface BatchedDecodeCheck {
  server: InferenceServer;
  /** The runs of the session `server` steps on. */
  counted: CountedSession;
  /** Decodes each prompt alone for the expected logits. */
  reference: DecoderSession;
  /** One slot per prompt, each holding its prompt. */
  slots: readonly Slot[];
  prompts: readonly (readonly number[])[];
  /** [step][slot] the token fed to each slot. */
  steps: readonly (readonly number[])[];
}

export async function checkBatchedDecode({ server, counted, reference, slots, prompts, steps }: BatchedDecodeCheck): Promise<void> {
  counted.runs.length = 0;
  const batched: Float32Array[][] = [];
  for (const tokens of steps) batched.push(await server.step(slots, tokens));
  assert.deepEqual(
    counted.runs,
    steps.map(() => prompts.length),
    `one run of batch ${prompts.length} per step`,
  );
  for (const [b, prompt] of prompts.entries()) {
    const alone = reference.newState();
    await reference.prefill(alone, [...prompt]);
    for (const [t, tokens] of steps.entries()) {
      const diff = maxAbsDiff(await reference.decode(alone, tokens[b]!), batched[t]![b]!);
      assert.ok(diff <= 1e-5, `slot ${b} step ${t}: ${diff}`);
    }
  }
}
