// The training dump: every example's token ids decoded back to text, exactly as the model will see
// them (FIM markers and end tokens as their text), under a header naming the split and the file, so
// a user or a test can check precisely what would be learnt. Written atomically: temp file, rename.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { DatasetExample } from './build-dataset';

/** What the dump needs from a tokenizer (model/tokenizer.ts's Tokenizer fits: special tokens kept verbatim). */
export interface DecodingTokenizer {
  decode(ids: readonly number[]): string;
}

/** Marks a header line; box-drawing characters so that no ordinary source line looks like one. */
const RULE = '\u2550'.repeat(8);

/** The line above one example, e.g. `════════ example 3 of 17 · train · src/app.ts · piece 1 of 2 · psm · 120 tokens ════════`. */
export function exampleHeader(e: DatasetExample, index: number, count: number): string {
  // a name holding a line break (git allows one) must not split the header line
  const path = /[\u0000-\u001f\u007f]/.test(e.path) ? JSON.stringify(e.path) : e.path;
  const piece = e.pieces > 1 ? ` · piece ${e.piece + 1} of ${e.pieces}` : '';
  return `${RULE} example ${index + 1} of ${count} · ${e.split} · ${path}${piece} · ${e.kind} · ${e.tokens.length} tokens ${RULE}`;
}

/** Train examples first, then validation; files in path order within each. */
function ordered(examples: readonly DatasetExample[]): DatasetExample[] {
  return [...examples.filter((e) => e.split === 'train'), ...examples.filter((e) => e.split === 'validation')];
}

export interface DumpSummary {
  path: string;
  examples: number;
  bytes: number;
}

/**
 * Writes the dump to `file` (its folder is made if missing). Each example is its header line, then
 * its decoded text, then one newline that is not part of the text.
 */
export async function writeTrainingDump(file: string, examples: readonly DatasetExample[], tokenizer: DecodingTokenizer, title: string): Promise<DumpSummary> {
  await mkdir(dirname(file), { recursive: true });
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const list = ordered(examples);
  const handle = await open(temp, 'wx', 0o600);
  let bytes = 0;
  const put = async (text: string) => {
    const chunk = Buffer.from(text, 'utf8');
    await handle.write(chunk);
    bytes += chunk.length;
  };
  try {
    const train = list.filter((e) => e.split === 'train').length;
    await put(`${title}\n`);
    await put(
      `${list.length} examples (${train} train, ${list.length - train} validation): each is the token ids the model trains on, decoded, special tokens as their text; the newline after each is not part of it.\n`,
    );
    for (const [i, e] of list.entries()) await put(`${exampleHeader(e, i, list.length)}\n${tokenizer.decode(e.tokens)}\n`);
    await handle.sync();
    await handle.close();
    await rename(temp, file);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  }
  return { path: file, examples: list.length, bytes };
}
