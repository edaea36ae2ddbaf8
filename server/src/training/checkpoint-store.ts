// Training checkpoints: parameters, AdamW moments, step and loop state in one folder, written to a
// temporary folder and swapped in by rename, with a sha256 of the tensors so a corrupt or partial
// checkpoint is refused with a clear message rather than loaded.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFileError } from '../model/errors';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors';
import type { LrSchedule } from './lr-schedule';
import type { BudgetFit, BudgetSizes } from './time-budget';
import type { TrainerState } from './trainer-session';

const TENSORS = 'state.safetensors';
const META = 'state.json';
export const CHECKPOINT_FORMAT = 'kiln-training-checkpoint-v1';

/** Loop state saved beside the tensors; `run` identifies what the checkpoint may resume. */
export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  /** Hash of the model, mode, hyper-parameters and dataset: a resume must match it. */
  run: string;
  step: number;
  bestValLoss: number;
  bestStep: number;
  stepsWithoutImprovement: number;
  tokensSeen: number;
  /** The learning-rate schedule the run follows; a budgeted run resumes it rather than refitting. */
  schedule?: LrSchedule;
  /** Set once a budgeted run has fitted its schedule to the time budget. */
  budget?: BudgetFit;
  /** The batch and validation sizes the run chose (absent in checkpoints older than them: the run's own batch, the whole sample). */
  sizes?: BudgetSizes;
  sha256: string;
  savedAt: string;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Saves the trainer state and the best parameters so far (a resumed run still returns its best). */
export function saveCheckpoint(
  dir: string,
  state: TrainerState,
  best: ReadonlyMap<string, Float32Array>,
  meta: Omit<CheckpointMeta, 'format' | 'sha256' | 'savedAt' | 'step'>,
): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const kinds = { values: state.values, m: state.m, v: state.v, best };
  const tensors = [...state.values.keys()].flatMap((name) =>
    Object.entries(kinds).map(([kind, map]) => ({ name: `${kind}/${name}`, dtype: 'F32' as const, shape: [state.values.get(name)!.length], data: map.get(name)! })),
  );
  writeSafetensors(join(tmp, TENSORS), tensors);
  const full: CheckpointMeta = { format: CHECKPOINT_FORMAT, ...meta, step: state.step, sha256: sha256(join(tmp, TENSORS)), savedAt: new Date().toISOString() };
  writeFileSync(join(tmp, META), JSON.stringify(full, null, 2));
  // Swap: the old checkpoint stays valid until the new one is complete in place.
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/** Loads a checkpoint written by saveCheckpoint; refuses anything incomplete, corrupt or from another run. */
export function loadCheckpoint(dir: string, expectedRun: string, paramNames: string[]): { state: TrainerState; best: Map<string, Float32Array>; meta: CheckpointMeta } {
  const metaPath = join(dir, META);
  const tensorsPath = join(dir, TENSORS);
  if (!existsSync(metaPath) || !existsSync(tensorsPath))
    throw new ModelFileError(dir, 'incomplete checkpoint (state.json or state.safetensors missing); refusing to resume from it');
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8')) as CheckpointMeta;
  } catch (err) {
    throw new ModelFileError(metaPath, `corrupt checkpoint metadata: ${(err as Error).message}`);
  }
  if (meta.format !== CHECKPOINT_FORMAT) throw new ModelFileError(metaPath, `not a Kiln training checkpoint (format ${JSON.stringify(meta.format)})`);
  if (meta.run !== expectedRun)
    throw new ModelFileError(
      metaPath,
      'checkpoint belongs to a different run (model, mode, settings or the workspace changed); resume with the original settings, or start over without resuming',
    );
  const { sizes } = meta;
  if (sizes !== undefined && !(Number.isInteger(sizes.batchSize) && sizes.batchSize >= 1 && Number.isInteger(sizes.validationBatches) && sizes.validationBatches >= 1))
    throw new ModelFileError(metaPath, `corrupt checkpoint metadata: batch and validation sizes ${JSON.stringify(sizes)}`);
  if (sha256(tensorsPath) !== meta.sha256) throw new ModelFileError(tensorsPath, 'checksum mismatch: the checkpoint is corrupt or partially written; refusing to load it');
  const file = SafetensorsFile.open(tensorsPath);
  try {
    const read = (kind: string) => new Map(paramNames.map((n) => [n, file.readFloat32(`${kind}/${n}`)]));
    return { state: { step: meta.step, values: read('values'), m: read('m'), v: read('v') }, best: read('best'), meta };
  } finally {
    file.close();
  }
}
