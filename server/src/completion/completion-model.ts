// Everything the completion engine needs from a model folder: the decoder session, the tokenizer,
// and the fill-in-the-middle template with the prompt order to use.
import { statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ContextFormat } from '../context/block';
import { ModelFileError } from '../model/errors';
import { ROPE_TABLE_POSITIONS } from '../model/graph/decoder-parts';
import { type FimOrder, type FimTemplate, resolveFimTemplate } from '../model/fim';
import { MODEL_FILE_CAPS, pathExists, readModelJsonObject } from '../model/read-model-file';
import { Tokenizer } from '../model/tokenizer';
import type { LoadedModel, LoadModelOptions } from '../runtime/load-model';
import { loadWithQuantization, type Precision, PRECISIONS, type QuantizationSetting } from '../runtime/quantization-choice';
import { prepareTokenHealing } from './token-healing';

export interface CompletionModel {
  name: string;
  loaded: LoadedModel;
  tokenizer: Tokenizer;
  fim: FimTemplate;
  order: FimOrder;
  /** Prompt plus completion stay within this many tokens (the trained context, or max positions). */
  contextTokens: number;
  /** The tokenizer files as they were read: a reload of the same folder with them unchanged reuses the tokenizer. */
  tokenizerStamp?: string;
  /** How the context block is written for this model (kiln.json); default: repo-level where the template has its tokens. */
  contextFormat?: ContextFormat;
}

/** What Kiln's trainer records beside a model it trained (`kiln.json`). */
export interface TrainedFacts {
  /** FIM orders the model was trained on, preferred first. */
  fimOrders?: FimOrder[];
  /** Longest sequence it was trained on: prompts are kept within it. */
  contextTokens?: number;
  /** What `kiln model quantize` measured; `recommended` is what `auto` loads on the CPU. */
  quantization?: QuantizationRecord;
  /** The context block's format the model does best with (a model with the repo-level tokens but never trained on that format may do better with comments). */
  contextFormat?: ContextFormat;
}

export interface QuantizationRecord {
  recommended: Precision;
  /** The bound on the relative validation-loss increase a recommended precision had to meet. */
  maxRelativeLossIncrease: number;
  /** Per precision: validation loss, its relative increase over unquantized, next-line scores, weight bytes. */
  measured: Partial<Record<Precision, { validationLoss: number; relativeLossIncrease: number; exactMatch: number; editSimilarity: number; weightBytes: number }>>;
  /** Where the held-out files came from, and when. */
  heldOut: string;
  date: string;
}

/** How the engine loads a model: prompt order and weight precision. */
export interface CompletionModelChoices {
  fimOrder: 'auto' | FimOrder;
  quantization: QuantizationSetting;
}

/** Reads `kiln.json` if the model folder has one; its fields are checked one by one. */
export function readTrainedFacts(dir: string): TrainedFacts {
  const file = join(dir, 'kiln.json');
  if (!pathExists(file)) return {};
  const json = readModelJsonObject(file, { maxBytes: MODEL_FILE_CAPS.kiln });
  const { fimOrders, contextTokens, quantization, contextFormat } = json;
  if (contextFormat !== undefined && contextFormat !== 'repo' && contextFormat !== 'comment') throw new ModelFileError(file, '"contextFormat" must be "repo" or "comment"');
  if (fimOrders !== undefined && !(Array.isArray(fimOrders) && fimOrders.length > 0 && fimOrders.every((o) => o === 'psm' || o === 'spm'))) {
    throw new ModelFileError(file, '"fimOrders" must be a non-empty list of "psm" / "spm"');
  }
  if (contextTokens !== undefined && !(Number.isInteger(contextTokens) && (contextTokens as number) >= 32))
    throw new ModelFileError(file, '"contextTokens" must be an integer ≥ 32');
  const recommended = (quantization as { recommended?: unknown } | undefined)?.recommended;
  if (quantization !== undefined && !PRECISIONS.includes(recommended as Precision))
    throw new ModelFileError(file, `"quantization.recommended" must be one of ${PRECISIONS.join(', ')}`);
  return {
    fimOrders: fimOrders as FimOrder[] | undefined,
    contextTokens: contextTokens as number | undefined,
    quantization: quantization as QuantizationRecord | undefined,
    ...(contextFormat === undefined ? {} : { contextFormat: contextFormat as ContextFormat }),
  };
}

/** SPM when the model knows it: typing at the cursor then only appends prompt tokens. */
export function chooseFimOrder(setting: 'auto' | FimOrder, trained: readonly FimOrder[]): FimOrder {
  if (setting !== 'auto') return setting;
  return trained.includes('spm') ? 'spm' : 'psm';
}

/** Identity, size and modification time of the files Tokenizer.load reads. */
function tokenizerStamp(dir: string): string {
  return ['tokenizer.json', 'tokenizer_config.json']
    .map((name) => {
      const st = statSync(join(dir, name), { throwIfNoEntry: false });
      return st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` : '-';
    })
    .join('|');
}

/**
 * Loads a model folder for the engine. `previous`, the model being replaced, lends its tokenizer when
 * the folder and its tokenizer files are the same (an adapter or precision swap): reading a real
 * tokenizer.json is tens of milliseconds on the caller's thread.
 */
export async function loadCompletionModel(dir: string, choices: CompletionModelChoices, options: LoadModelOptions, previous?: CompletionModel): Promise<CompletionModel> {
  const facts = readTrainedFacts(dir);
  // The graph first: where `options.prepare` is the model worker, it also checks the tokenizer fits
  // the model, so the load below (on this thread) is bounded by a real vocabulary's size.
  const loaded = await loadWithQuantization(dir, choices.quantization, facts.quantization?.recommended, options);
  const stamp = tokenizerStamp(dir);
  let tokenizer: Tokenizer;
  let fim: FimTemplate | undefined;
  try {
    if (previous && previous.loaded.dir === dir && previous.tokenizerStamp === stamp) {
      tokenizer = previous.tokenizer;
      fim = previous.fim;
    } else {
      // in steps, each after a turn of the event loop (the first after a session created on this thread): requests that waited go first
      tokenizer = await Tokenizer.loadInSteps(dir);
      await new Promise((resolve) => setImmediate(resolve));
      prepareTokenHealing(tokenizer); // its byte table, in a step of its own: not on the first keystroke
      fim = resolveFimTemplate(tokenizer);
    }
    if (!fim) throw new ModelFileError(join(dir, 'tokenizer.json'), 'the tokenizer has no fill-in-the-middle tokens; Kiln needs a FIM-trained code model');
  } catch (err) {
    await loaded.session.release();
    throw err;
  }
  const order = chooseFimOrder(choices.fimOrder, facts.fimOrders ?? fim.orders);
  return {
    name: basename(dir),
    loaded,
    tokenizer,
    fim,
    order,
    contextTokens: Math.min(facts.contextTokens ?? Infinity, loaded.config.maxPositions, ROPE_TABLE_POSITIONS),
    tokenizerStamp: stamp,
    ...(facts.contextFormat === undefined ? {} : { contextFormat: facts.contextFormat }),
  };
}
