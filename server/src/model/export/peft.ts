// LoRA adapters in Hugging Face PEFT's layout, so adapters move between Kiln and the Python ecosystem:
//
//   adapter_config.json        {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", …], …}
//   adapter_model.safetensors  base_model.model.<module>.lora_A.weight  [r, in]
//                              base_model.model.<module>.lora_B.weight  [out, r]
//
// <module> is the HF module path (`model.layers.0.self_attn.q_proj`); Kiln names the same tensors
// `<module>.lora_A.weight` (the training graph's inputs). delta W [out, in] = scale · B @ A, where
// scale = lora_alpha / r, or lora_alpha / √r when `use_rslora` is set (rank-stabilised LoRA, as PEFT
// computes it). Kiln writes plain LoRA (use_rslora false) and reads both.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expectedTensors } from '../checkpoint';
import type { ModelConfig } from '../config';
import { ModelFileError } from '../errors';
import { MODEL_FILE_CAPS, readModelJsonObject, sha256OfRegularFile } from '../read-model-file';
import { LORA_TARGETS, type LoraTarget, type TrainingMode } from '../graph/training-graph';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../safetensors';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** PeftModel wraps a LoraModel (`base_model`) that wraps the HF model (`model`). */
const PEFT_PREFIX = 'base_model.model.';

export type LoraMode = Extract<TrainingMode, { kind: 'lora' }>;

export interface LoraAdapter {
  dir: string;
  rank: number;
  alpha: number;
  /** What B @ A is multiplied by: alpha / r, or alpha / √r for rank-stabilised LoRA. */
  scale: number;
  useRslora: boolean;
  /** The projections that carry LoRA tensors, in LORA_TARGETS order. */
  targets: LoraTarget[];
  /** Kiln names (`<module>.lora_A.weight`) -> values: A [r, in], B [out, r]. */
  tensors: Map<string, Float32Array>;
  /** sha256 of adapter_model.safetensors. */
  hash: string;
  /** base_model_name_or_path, when the config names one. */
  baseModel?: string;
}

export interface SaveLoraAdapterOptions {
  /** base_model_name_or_path: a folder or a hub name. */
  baseModel: string;
  mode: Pick<LoraMode, 'rank' | 'alpha' | 'targets' | 'layers'>;
  /** Kiln names (`<module>.lora_A.weight`) -> values. */
  tensors: ReadonlyMap<string, Float32Array>;
  shapes: ReadonlyMap<string, readonly number[]>;
}

/** `<module>.lora_A.weight` -> the module and which matrix; undefined for any other name. */
export function splitLoraName(name: string): { module: string; which: 'A' | 'B' } | undefined {
  const m = /^(.+)\.lora_([AB])\.weight$/.exec(name);
  return m ? { module: m[1]!, which: m[2] as 'A' | 'B' } : undefined;
}

const pairName = (module: string, which: 'A' | 'B') => `${module}.lora_${which}.weight`;
const shortName = (module: string) => module.slice(module.lastIndexOf('.') + 1);

/** HF module path -> [out, in] for every projection of this config that LoRA can adapt. */
export function loraModuleShapes(c: ModelConfig): Map<string, [number, number]> {
  const shapes = new Map<string, [number, number]>();
  for (const t of expectedTensors(c)) {
    const module = t.name.replace(/\.weight$/, '');
    if (t.shape.length === 2 && module !== t.name && LORA_TARGETS.includes(shortName(module) as LoraTarget)) shapes.set(module, [t.shape[0]!, t.shape[1]!]);
  }
  return shapes;
}

/** Throws `fail(problem)` unless every tensor's pair (A for B, B for A) is present too. */
function checkPairs(names: Iterable<string>, has: (name: string) => boolean, fail: (problem: string) => Error): void {
  for (const name of names) {
    const p = splitLoraName(name)!;
    const other = pairName(p.module, p.which === 'A' ? 'B' : 'A');
    if (!has(other)) throw fail(`"${other}" is missing (its pair "${name}" is present)`);
  }
}

/**
 * Writes a folder's files into a temp folder beside it, then moves them in. A new folder is renamed
 * into place whole; into an existing one, the files `write` returns are renamed over their old versions
 * in that order (each file atomic: list last the file readers open first), and other files are kept.
 */
export function publishFolder(dir: string, write: (tmp: string) => string[]): void {
  const tmp = `${dir}.tmp-${process.pid}-${randomUUID()}`; // unique across threads of one process too
  mkdirSync(tmp, { recursive: true });
  try {
    const files = write(tmp);
    if (!existsSync(dir)) {
      mkdirSync(dirname(dir), { recursive: true });
      renameSync(tmp, dir);
      return;
    }
    for (const f of files) renameSync(join(tmp, f), join(dir, f));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function adaptedLayers(names: Iterable<string>): number[] {
  const layers = new Set<number>();
  for (const n of names) {
    const m = /^model\.layers\.(\d+)\./.exec(n);
    if (m) layers.add(Number(m[1]));
  }
  return [...layers].sort((a, b) => a - b);
}

/** adapter_config.json as PEFT's LoraConfig.save_pretrained writes it (keys sorted, every field it reads). */
function adapterConfigJson(o: SaveLoraAdapterOptions): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: o.baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    // LoRA on the top layers only: the layer indices its tensors adapt, as PEFT records them
    layers_to_transform: o.mode.layers === undefined ? null : adaptedLayers(o.tensors.keys()),
    loftq_config: {},
    lora_alpha: o.mode.alpha,
    lora_dropout: 0,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: o.mode.rank,
    rank_pattern: {},
    revision: null,
    target_modules: LORA_TARGETS.filter((t) => o.mode.targets.includes(t)),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
}

/** Writes adapter_config.json and adapter_model.safetensors (F32) into `dir`, atomically per file. */
export function saveLoraAdapter(dir: string, o: SaveLoraAdapterOptions): void {
  const fail = (problem: string) => new Error(`saveLoraAdapter: ${problem}`);
  const list: TensorToWrite[] = [];
  for (const [name, data] of o.tensors) {
    const p = splitLoraName(name);
    if (!p || !o.mode.targets.includes(shortName(p.module) as LoraTarget)) {
      throw fail(`"${name}" is not a lora_A/lora_B weight of the targets ${o.mode.targets.join(', ')}`);
    }
    const shape = o.shapes.get(name);
    if (!shape || shape.length !== 2 || shape[p.which === 'A' ? 0 : 1] !== o.mode.rank) {
      throw fail(`"${name}" has shape ${JSON.stringify(shape)}, expected rank ${o.mode.rank} ${p.which === 'A' ? '[r, in]' : '[out, r]'}`);
    }
    list.push({ name: PEFT_PREFIX + name, shape: [...shape], dtype: 'F32', data });
  }
  if (list.length === 0) throw fail('no tensors to save');
  checkPairs(o.tensors.keys(), (n) => o.tensors.has(n), fail);
  const config = adapterConfigJson(o);
  publishFolder(dir, (tmp) => {
    writeSafetensors(join(tmp, ADAPTER_WEIGHTS_FILE), list, { format: 'pt' });
    writeFileSync(join(tmp, ADAPTER_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
    return [ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE]; // the config last: it never names tensors not yet there
  });
}

type Json = Record<string, unknown>;

const isSet = (v: unknown) => v !== undefined && v !== null && v !== false && !(typeof v === 'object' && Object.keys(v).length === 0);

const PLAIN_LORA = 'Kiln applies plain LoRA to the linear projections only';
/** Initialisations that also change the base weights: the adapter is relative to that changed base. */
const BASE_CHANGING_INIT = /^(pissa|olora|loftq|corda)/;

/** PEFT features that change what the tensors mean or add tensors Kiln cannot apply. */
const UNSUPPORTED: [key: string, present: (v: unknown) => boolean, why?: string][] = [
  ['use_dora', (v) => v === true],
  ['fan_in_fan_out', (v) => v === true],
  ['bias', (v) => v !== undefined && v !== null && v !== 'none'],
  ['lora_bias', (v) => v === true],
  ['modules_to_save', isSet],
  ['rank_pattern', isSet],
  ['alpha_pattern', isSet],
  ['layer_replication', isSet],
  ['trainable_token_indices', isSet],
  ['target_parameters', isSet],
  [
    'init_lora_weights',
    (v) => typeof v === 'string' && BASE_CHANGING_INIT.test(v),
    'it changes the base weights too; save with path_initial_model_for_weight_conversion for a plain LoRA',
  ],
];

interface AdapterConfig {
  rank: number;
  alpha: number;
  useRslora: boolean;
  /** A list of module-name suffixes; undefined when the config gives a regex, "all-linear" or nothing. */
  targetModules?: string[];
  baseModel?: string;
}

/** A bounded read of a regular file (a FIFO or device is refused without blocking). */
function readJsonObject(file: string, missing: string): Json {
  return readModelJsonObject(file, { maxBytes: MODEL_FILE_CAPS.adapterConfig, missing });
}

function parseAdapterConfig(file: string): AdapterConfig {
  const j = readJsonObject(file, `not found: a PEFT adapter folder needs ${ADAPTER_CONFIG_FILE}`);
  if (j.peft_type !== 'LORA') throw new ModelFileError(file, `peft_type ${JSON.stringify(j.peft_type)} is not supported (only "LORA")`);
  const rank = j.r;
  // bounds far past any published adapter (ranks up to a few thousand, alpha up to a few times rank)
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank <= 0 || rank > 65_536)
    throw new ModelFileError(file, `"r" must be an integer from 1 to 65536, got ${JSON.stringify(rank)}`);
  const alpha = j.lora_alpha;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || Math.abs(alpha) > 1e6)
    throw new ModelFileError(file, `"lora_alpha" must be a number from -1000000 to 1000000, got ${JSON.stringify(alpha)}`);
  if (j.use_rslora !== undefined && j.use_rslora !== null && typeof j.use_rslora !== 'boolean') throw new ModelFileError(file, `"use_rslora" must be true or false`);
  for (const [key, present, why] of UNSUPPORTED) {
    if (present(j[key])) throw new ModelFileError(file, `${key}=${JSON.stringify(j[key])} is not supported (${why ?? PLAIN_LORA})`);
  }
  const t = j.target_modules;
  if (Array.isArray(t) && !t.every((x) => typeof x === 'string')) throw new ModelFileError(file, '"target_modules" must be a list of module names');
  return {
    rank,
    alpha,
    useRslora: j.use_rslora === true,
    targetModules: Array.isArray(t) ? (t as string[]) : undefined,
    baseModel: typeof j.base_model_name_or_path === 'string' ? j.base_model_name_or_path : undefined,
  };
}

/** The adapter's tensors under Kiln names, each checked against the base config's module shapes. */
function readAdapterTensors(file: string, config: ModelConfig, ac: AdapterConfig): Map<string, Float32Array> {
  const st = SafetensorsFile.open(file);
  try {
    const modules = loraModuleShapes(config);
    const tensors = new Map<string, Float32Array>();
    for (const [name, info] of st.tensors) {
      const kiln = name.startsWith(PEFT_PREFIX) ? name.slice(PEFT_PREFIX.length) : '';
      const p = splitLoraName(kiln);
      const dims = p && modules.get(p.module);
      if (!p || !dims) {
        throw new ModelFileError(
          file,
          `unknown tensor "${name}": expected ${PEFT_PREFIX}model.layers.<0-${config.numLayers - 1}>.<module>.lora_A/lora_B.weight for one of ${LORA_TARGETS.join(', ')}`,
        );
      }
      if (ac.targetModules && !ac.targetModules.some((t) => p.module === t || p.module.endsWith(`.${t}`))) {
        throw new ModelFileError(file, `tensor "${name}" adapts a module that target_modules (${ac.targetModules.join(', ')}) does not name`);
      }
      const want = p.which === 'A' ? [ac.rank, dims[1]] : [dims[0], ac.rank];
      if (info.shape.length !== 2 || info.shape[0] !== want[0] || info.shape[1] !== want[1]) {
        throw new ModelFileError(file, `tensor "${name}" has shape ${JSON.stringify(info.shape)} but r=${ac.rank} and the base model's config imply ${JSON.stringify(want)}`);
      }
      const values = st.readFloat32(name);
      if (!values.every(Number.isFinite)) throw new ModelFileError(file, `tensor "${name}" holds NaN or infinite values`);
      tensors.set(kiln, values);
    }
    if (tensors.size === 0) throw new ModelFileError(file, 'holds no LoRA tensors');
    checkPairs(
      tensors.keys(),
      (n) => tensors.has(n),
      (problem) => new ModelFileError(file, `tensor ${problem}`),
    );
    return tensors;
  } finally {
    st.close();
  }
}

/** Reads and validates a PEFT LoRA adapter folder against the base model's config. */
export function loadLoraAdapter(dir: string, config: ModelConfig): LoraAdapter {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new ModelFileError(dir, 'adapter folder does not exist');
  const ac = parseAdapterConfig(join(dir, ADAPTER_CONFIG_FILE));
  const file = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(file)) {
    const pickle = existsSync(join(dir, 'adapter_model.bin'));
    throw new ModelFileError(
      file,
      pickle
        ? 'not found (adapter_model.bin is a pickle Kiln does not read: re-save it with safe_serialization=True)'
        : `not found: a PEFT adapter folder needs ${ADAPTER_WEIGHTS_FILE}`,
    );
  }
  // hashed before and after reading: a file replaced meanwhile (a trainer saving) never pairs a hash with other tensors
  const hash = sha256OfRegularFile(file, 'adapter file');
  const tensors = readAdapterTensors(file, config, ac);
  if (sha256OfRegularFile(file, 'adapter file') !== hash) throw new ModelFileError(file, 'changed while it was being read; load it again');
  const modules = [...tensors.keys()].map((n) => shortName(splitLoraName(n)!.module));
  return {
    dir,
    rank: ac.rank,
    alpha: ac.alpha,
    scale: ac.useRslora ? ac.alpha / Math.sqrt(ac.rank) : ac.alpha / ac.rank,
    useRslora: ac.useRslora,
    targets: LORA_TARGETS.filter((t) => modules.includes(t)),
    tensors,
    hash,
    baseModel: ac.baseModel,
  };
}
