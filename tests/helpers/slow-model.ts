// A model folder that is valid but slow to load: a copy of a good model whose safetensors header also
// lists many zero-size tensors, so checking and hashing it take seconds (in the model worker) while the
// graph it builds is the good model's.
import { closeSync, cpSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Zero-size tensors added to a header: ~40 MB of JSON that took the old, in-thread check ~4 s here. */
export const PADDING_TENSORS = 600_000;

/** Copies `goodDir` to `dir` with `paddingTensors` empty tensors added to its safetensors header. */
export function writeSlowToValidate(goodDir: string, dir: string, paddingTensors = PADDING_TENSORS): string {
  cpSync(goodDir, dir, { recursive: true });
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>;
  const parts = [JSON.stringify(header).slice(1, -1)];
  for (let i = 0; i < paddingTensors; i++) parts.push(`"padding.${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
  let json = Buffer.from(`{${parts.join(',')}}`);
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, ' ')]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = openSync(file, 'w');
  try {
    for (const part of [len, json, bytes.subarray(8 + headerLen)]) writeSync(fd, part);
  } finally {
    closeSync(fd);
  }
  return dir;
}
