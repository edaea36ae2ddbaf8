// Copies a pretrained run's model into models/<name>/ as the embedded default: fp16 weights,
// config, tokenizer, and kiln.json (FIM orders, trained context). The model card is written by hand
// from the measured figures (see models/<name>/MODEL_CARD.md).
// usage: node --import tsx scripts/publish-default-model.ts <run-model-dir> <name> --context N
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../server/src/model/checkpoint';
import { writeSafetensors } from '../server/src/model/safetensors';
import { readTrainedFacts } from '../server/src/completion/completion-model';

const [source, name, flag, context] = process.argv.slice(2);
if (!source || !name || flag !== '--context' || !context) {
  console.error('usage: node --import tsx scripts/publish-default-model.ts <run-model-dir> <name> --context N');
  process.exit(2);
}
const out = join('models', name);
mkdirSync(out, { recursive: true });
const checkpoint = openCheckpoint(source);
try {
  const tensors = checkpoint.weights.names().map((n) => ({ name: n, shape: checkpoint.weights.info(n).shape, dtype: 'F16' as const, data: checkpoint.weights.readFloat32(n) }));
  writeSafetensors(join(out, 'model.safetensors'), tensors, { format: 'pt' });
} finally {
  checkpoint.weights.close();
}
for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(source, f), join(out, f));
const facts = readTrainedFacts(source);
writeFileSync(join(out, 'kiln.json'), `${JSON.stringify({ fimOrders: facts.fimOrders ?? ['spm', 'psm'], contextTokens: Number(context) }, null, 2)}\n`);
console.log(`wrote ${out}`);
