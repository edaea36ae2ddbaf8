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
  /** Prompt plus completion stay within this many tokens (the trained context, or max positions). */
  contextTokens: number;
}

/** What Kiln's trainer records beside a model it trained (`kiln.json`). */
export interface TrainedFacts {
  /** FIM orders the model was trained on, preferred first. */
  fimOrders?: FimOrder[];
  /** Longest sequence it was trained on: prompts are kept within it. */
  contextTokens?: number;
}

/** Reads `kiln.json` if the model folder has one; its fields are checked one by one. */
export function readTrainedFacts(dir: string): TrainedFacts {
  const file = join(dir, 'kiln.json');
  if (!existsSync(file)) return {};
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new ModelFileError(file, `invalid JSON: ${(err as Error).message}`);
  }
  const { fimOrders, contextTokens } = json;
  if (fimOrders !== undefined && !(Array.isArray(fimOrders) && fimOrders.length > 0 && fimOrders.every((o) => o === 'psm' || o === 'spm'))) {
    throw new ModelFileError(file, '"fimOrders" must be a non-empty list of "psm" / "spm"');
  }
  if (contextTokens !== undefined && !(Number.isInteger(contextTokens) && (contextTokens as number) >= 32)) throw new ModelFileError(file, '"contextTokens" must be an integer ≥ 32');
  return { fimOrders: fimOrders as FimOrder[] | undefined, contextTokens: contextTokens as number | undefined };
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
  const facts = readTrainedFacts(dir);
  const order = chooseFimOrder(fimOrder, facts.fimOrders ?? fim.orders);
  const loaded = await loadModel(dir, options);
  return { name: basename(dir), loaded, tokenizer, fim, order, contextTokens: Math.min(facts.contextTokens ?? Infinity, loaded.config.maxPositions) };
}
