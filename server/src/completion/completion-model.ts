// Everything the completion engine needs from a model folder: the decoder session, the tokenizer,
// and the fill-in-the-middle template with the prompt order to use.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ModelFileError } from '../model/errors';
import { type FimOrder, type FimTemplate, resolveFimTemplate } from '../model/fim';
import { Tokenizer } from '../model/tokenizer';
import { loadModel, type LoadedModel, type LoadModelOptions } from '../runtime/load-model';

export interface CompletionModel {
  name: string;
  loaded: LoadedModel;
  tokenizer: Tokenizer;
  fim: FimTemplate;
  order: FimOrder;
}

/**
 * The FIM orders a model was trained on: `kiln.json` {"fimOrders": [...]} in the model folder
 * (written by Kiln's trainer) overrides the family's published orders.
 */
function trainedOrders(dir: string, template: FimTemplate): readonly FimOrder[] {
  const file = join(dir, 'kiln.json');
  if (!existsSync(file)) return template.orders;
  try {
    const orders = (JSON.parse(readFileSync(file, 'utf8')) as { fimOrders?: unknown }).fimOrders;
    if (Array.isArray(orders) && orders.length > 0 && orders.every((o) => o === 'psm' || o === 'spm')) return orders as FimOrder[];
  } catch (err) {
    throw new ModelFileError(file, `invalid JSON: ${(err as Error).message}`);
  }
  throw new ModelFileError(file, '"fimOrders" must be a non-empty list of "psm" / "spm"');
}

/** SPM when the model knows it: typing at the cursor then only appends prompt tokens. */
export function chooseFimOrder(setting: 'auto' | FimOrder, trained: readonly FimOrder[]): FimOrder {
  if (setting !== 'auto') return setting;
  return trained.includes('spm') ? 'spm' : 'psm';
}

export async function loadCompletionModel(dir: string, fimOrder: 'auto' | FimOrder, options: LoadModelOptions): Promise<CompletionModel> {
  const tokenizer = Tokenizer.load(dir);
  const fim = resolveFimTemplate(tokenizer);
  if (!fim) throw new ModelFileError(join(dir, 'tokenizer.json'), 'the tokenizer has no fill-in-the-middle tokens; Kiln needs a FIM-trained code model');
  const order = chooseFimOrder(fimOrder, trainedOrders(dir, fim));
  const loaded = await loadModel(dir, options);
  return { name: basename(dir), loaded, tokenizer, fim, order };
}
