// The probe's lazily generated weights (real-size-train-probe.ts) written out as a Hugging Face
// checkpoint, so that a peer engine (the bench's PyTorch row) trains on exactly the same weights.
// One tensor is in memory at a time: the 24-layer 0.5B shape is 2 GB of fp32.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedTensors } from '../../server/src/model/checkpoint';
import { type ModelConfig, toHfConfigJson } from '../../server/src/model/config';
import { writeSafetensors } from '../../server/src/model/safetensors';
import { lazyWeights, PROBE_WEIGHT_SEED } from './real-size-train-probe';

/** Writes `dir`/config.json and `dir`/model.safetensors (fp32) holding the probe's weights for `config`. */
export function writeProbeCheckpoint(dir: string, config: ModelConfig): void {
  mkdirSync(dir, { recursive: true });
  const weights = lazyWeights(config, PROBE_WEIGHT_SEED);
  writeSafetensors(
    join(dir, 'model.safetensors'),
    expectedTensors(config).map((t) => ({ name: t.name, shape: t.shape, dtype: 'F32' as const, data: () => weights.readFloat32(t.name) })),
  );
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(config), null, 2));
}
