// Which files of a Hub repository Kiln fetches: config, tokenizer, and safetensors weights (one
// file, or an index and the shards it names). Everything else (READMEs, .bin, ONNX, GGUF) stays.
import { HubError, type HubFile } from './hub';

export const REQUIRED_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json'] as const;
/** Fetched when the repository has them; `kiln.json` names the FIM orders a Kiln fine-tune used. */
export const OPTIONAL_FILES = ['generation_config.json', 'special_tokens_map.json', 'kiln.json'] as const;
export const SINGLE_WEIGHTS = 'model.safetensors';
export const WEIGHTS_INDEX = 'model.safetensors.index.json';

export interface DownloadPlan {
  /** The shard index, fetched first when the weights are sharded. */
  index?: HubFile;
  /** The rest, small files first. */
  files: HubFile[];
}

const WINDOWS_DEVICE = /^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i;

/**
 * A repository-relative path that stays inside the model folder on every platform and out of its
 * hidden folders: no absolute path, drive, backslash, control character, empty, `.` or `..` part,
 * and no part starting with "." (`.partial/` holds unverified bytes; `.git/` and others are not
 * the model's), ending with "." or a space, or naming a Windows device (`NUL`, `COM1.json`).
 */
export function isSafeRelativePath(path: string): boolean {
  if (!path || path.length > 255 || path.startsWith('/') || /[\\:\x00-\x1f\x7f]/.test(path)) return false;
  return path.split('/').every((part) => part !== '' && !part.startsWith('.') && !/[. ]$/.test(part) && !WINDOWS_DEVICE.test(part));
}

export function planDownload(repo: string, listed: HubFile[]): DownloadPlan {
  const byPath = new Map(listed.map((f) => [f.path, f]));
  const missing = REQUIRED_FILES.filter((name) => !byPath.has(name));
  const single = byPath.get(SINGLE_WEIGHTS);
  const index = single ? undefined : byPath.get(WEIGHTS_INDEX);
  if (!single && !index) {
    const bins = listed.filter((f) => /(^|\/)(pytorch_)?model[^/]*\.bin$/.test(f.path)).map((f) => f.path);
    if (bins.length) {
      throw new HubError(
        `${repo} has only PyTorch .bin weights (${bins.slice(0, 3).join(', ')}); Kiln reads safetensors only: pick a repository with model.safetensors`,
        'unsupported',
      );
    }
    throw new HubError(`${repo} has no ${SINGLE_WEIGHTS} or ${WEIGHTS_INDEX} at its top level; Kiln needs safetensors weights in the Hugging Face layout`, 'unsupported');
  }
  if (missing.length) throw new HubError(`${repo} has no ${missing.join(', ')}; Kiln needs the config and the fast tokenizer files`, 'unsupported');
  const small = [...REQUIRED_FILES, ...OPTIONAL_FILES].flatMap((name) => byPath.get(name) ?? []);
  return { index, files: single ? [...small, single] : small };
}

/** The shards a `model.safetensors.index.json` names, each checked against the repository's listing. */
export function shardsFromIndex(repo: string, indexText: string, listed: HubFile[]): HubFile[] {
  let weightMap: unknown;
  try {
    weightMap = (JSON.parse(indexText) as { weight_map?: unknown }).weight_map;
  } catch (err) {
    throw new HubError(`${WEIGHTS_INDEX} of ${repo} is not JSON: ${(err as Error).message}`, 'unsupported');
  }
  if (!weightMap || typeof weightMap !== 'object') throw new HubError(`${WEIGHTS_INDEX} of ${repo} has no "weight_map"`, 'unsupported');
  const names = [...new Set(Object.values(weightMap as Record<string, unknown>))].sort();
  const byPath = new Map(listed.map((f) => [f.path, f]));
  const folded = new Map<string, string>(); // names equal but for case are one file on macOS and Windows
  return names.map((name) => {
    if (typeof name !== 'string' || !isSafeRelativePath(name) || !name.endsWith('.safetensors')) {
      throw new HubError(`${WEIGHTS_INDEX} of ${repo} names a shard ${JSON.stringify(name)} that is not a safetensors file inside the repository`, 'unsupported');
    }
    const clash = folded.get(name.toLowerCase());
    if (clash) throw new HubError(`${WEIGHTS_INDEX} of ${repo} names shards "${clash}" and "${name}", which differ only in case`, 'unsupported');
    folded.set(name.toLowerCase(), name);
    const listedFile = byPath.get(name);
    if (!listedFile) throw new HubError(`${WEIGHTS_INDEX} of ${repo} names ${name}, which the repository does not have`, 'unsupported');
    return listedFile;
  });
}
