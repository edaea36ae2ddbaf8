// A Hugging Face checkpoint folder: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json. Validates that every tensor the decoder needs exists with its shape.
import { lstatSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelConfig, type ModelConfig } from './config';
import { ModelFileError } from './errors';
import { MODEL_FILE_CAPS, pathExists, readModelJsonObject } from './read-model-file';
import { SafetensorsFile, type TensorInfo } from './safetensors';

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

/** HF tensor names and shapes of a LLaMA-family decoder (PyTorch Linear weights are [out, in]). */
export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const list: ExpectedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, d] }];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    list.push(
      { name: `${p}.input_layernorm.weight`, shape: [d] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [q, d] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, d] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, d] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [d, q] },
    );
    if (c.attentionBias) {
      list.push({ name: `${p}.self_attn.q_proj.bias`, shape: [q] }, { name: `${p}.self_attn.k_proj.bias`, shape: [kv] }, { name: `${p}.self_attn.v_proj.bias`, shape: [kv] });
    }
    list.push(
      { name: `${p}.post_attention_layernorm.weight`, shape: [d] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [c.intermediateSize, d] },
      { name: `${p}.mlp.up_proj.weight`, shape: [c.intermediateSize, d] },
      { name: `${p}.mlp.down_proj.weight`, shape: [d, c.intermediateSize] },
    );
  }
  list.push({ name: 'model.norm.weight', shape: [d] });
  if (!c.tieWordEmbeddings) list.push({ name: 'lm_head.weight', shape: [c.vocabSize, d] });
  return list;
}

/** Every tensor of a checkpoint, across one or many safetensors files, read lazily. */
export class WeightStore {
  private constructor(
    private readonly owner: ReadonlyMap<string, SafetensorsFile>,
    readonly files: readonly SafetensorsFile[],
    /** The file that lists the tensors (the index when sharded): named when one is missing. */
    readonly source: string,
  ) {}

  static open(dir: string): WeightStore {
    const indexPath = join(dir, 'model.safetensors.index.json');
    const singlePath = join(dir, 'model.safetensors');
    if (pathExists(indexPath)) return WeightStore.openSharded(dir, indexPath);
    if (!pathExists(singlePath)) throw new ModelFileError(dir, 'no model.safetensors or model.safetensors.index.json in this folder');
    const file = SafetensorsFile.open(singlePath);
    return new WeightStore(new Map([...file.tensors.keys()].map((n) => [n, file])), [file], singlePath);
  }

  private static openSharded(dir: string, indexPath: string): WeightStore {
    const index = readModelJsonObject(indexPath, { maxBytes: MODEL_FILE_CAPS.shardIndex, invalid: 'invalid index' });
    const weightMap = index.weight_map as Record<string, string> | undefined;
    if (!weightMap || typeof weightMap !== 'object' || Array.isArray(weightMap)) throw new ModelFileError(indexPath, 'invalid index: no "weight_map" object');
    const shards = new Map<string, SafetensorsFile>();
    const owner = new Map<string, SafetensorsFile>();
    try {
      for (const [name, shardName] of Object.entries(weightMap)) {
        if (typeof shardName !== 'string' || shardName.includes('/') || shardName.includes('\\')) {
          throw new ModelFileError(indexPath, `tensor "${name}" maps to an invalid shard name ${JSON.stringify(shardName)}`);
        }
        let shard = shards.get(shardName);
        if (!shard) {
          shard = SafetensorsFile.open(join(dir, shardName));
          shards.set(shardName, shard);
        }
        if (!shard.tensors.has(name)) throw new ModelFileError(shard.path, `missing tensor "${name}" (listed in ${indexPath})`);
        owner.set(name, shard);
      }
    } catch (err) {
      for (const s of shards.values()) s.close();
      throw err;
    }
    return new WeightStore(owner, [...shards.values()], indexPath);
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  names(): string[] {
    return [...this.owner.keys()];
  }

  info(name: string): TensorInfo {
    return this.fileOf(name).info(name);
  }

  readFloat32(name: string): Float32Array {
    return this.fileOf(name).readFloat32(name);
  }

  readFloat32Into(name: string, out: Float32Array): void {
    this.fileOf(name).readFloat32Into(name, out);
  }

  readRowsInto(name: string, first: number, out: Float32Array): void {
    this.fileOf(name).readRowsInto(name, first, out);
  }

  readHalfBits(name: string): Uint16Array {
    return this.fileOf(name).readHalfBits(name);
  }

  /** The file that holds a tensor, for error messages. */
  pathOf(name: string): string {
    return this.fileOf(name).path;
  }

  private fileOf(name: string): SafetensorsFile {
    const f = this.owner.get(name);
    if (!f) throw new ModelFileError(this.source, `missing tensor "${name}"`);
    return f;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

export interface Checkpoint {
  dir: string;
  config: ModelConfig;
  weights: WeightStore;
}

/** Throws unless `dir` is (or links to) a folder, saying what it is instead. */
function checkModelFolder(dir: string): void {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && lstatSync(dir, { throwIfNoEntry: false })?.isSymbolicLink()) {
      throw new ModelFileError(dir, `symbolic link to ${readlinkSync(dir)}, which does not exist`);
    }
    throw new ModelFileError(dir, code === 'ENOENT' || code === 'ENOTDIR' ? 'model folder does not exist' : `cannot read: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new ModelFileError(dir, 'not a folder: give the checkpoint folder that holds config.json');
}

/** Opens a checkpoint folder and checks every tensor the decoder needs against the config. */
export function openCheckpoint(dir: string): Checkpoint {
  checkModelFolder(dir);
  const config = loadModelConfig(dir);
  const weights = WeightStore.open(dir);
  try {
    for (const t of expectedTensors(config)) {
      if (!weights.has(t.name)) throw new ModelFileError(weights.source, `missing tensor "${t.name}"`);
      const info = weights.info(t.name);
      if (info.shape.length !== t.shape.length || info.shape.some((v, i) => v !== t.shape[i])) {
        throw new ModelFileError(weights.pathOf(t.name), `tensor "${t.name}" has shape ${JSON.stringify(info.shape)} but config.json implies ${JSON.stringify(t.shape)}`);
      }
    }
  } catch (err) {
    weights.close();
    throw err;
  }
  return { dir, config, weights };
}
