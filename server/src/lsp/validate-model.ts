// "Select Model…" checks a folder before switching to it: config, weights and tokenizer must load.
// Every read is bounded and refuses FIFOs and devices; the server runs this in the model worker
// (model-worker-client.ts; nothing here may import onnxruntime), the CLI in its own thread.
import { openCheckpoint } from '../model/checkpoint';
import { resolveFimTemplate } from '../model/fim';
import { Tokenizer } from '../model/tokenizer';
import type { ValidateModelResult } from '../protocol';

export function validateModelFolder(path: string): ValidateModelResult {
  try {
    const checkpoint = openCheckpoint(path);
    checkpoint.weights.close();
    const tokenizer = Tokenizer.load(path);
    const fim = resolveFimTemplate(tokenizer);
    if (!fim) return { ok: false, message: `${path}: the tokenizer has no fill-in-the-middle tokens; Kiln needs a FIM-trained code model` };
    const c = checkpoint.config;
    return { ok: true, message: `${c.modelType}, ${c.numLayers} layers, d=${c.hiddenSize}, vocab ${c.vocabSize}, FIM family ${fim.family}` };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}
