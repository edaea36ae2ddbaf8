// "Select Model…" checks a folder before switching to it: config, weights and tokenizer must load.
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
