// `kiln tokenizer train <corpus-dir>`: trains Kiln's byte-level BPE on a folder of source files,
// writes tokenizer.json + tokenizer_config.json, and with --measure reports bytes per token on
// held-out code and checks that every held-out file round-trips.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { walkWorkspace } from '../dataset/ignore-walk';
import { keyedRandom } from '../dataset/random';
import { KILN_SPECIAL_TOKENS, learnMerges, truncateMerges, vocabularyOf } from '../model/bpe-trainer';
import { writeTokenizerFiles } from '../model/bpe/hf-files';
import { measureTokenizer, type Measurement, type MeasuredFile } from '../model/bpe/measure';
import { WordCounter } from '../model/bpe/pretokenize';
import { Tokenizer } from '../model/tokenizer';
import { parseCommandArgs, parseNonNegativeInt, UsageError, withUsage } from './cli-args';

const USAGE =
  'usage: kiln tokenizer train <corpus-dir> --vocab N[,N…] --out DIR [--sample-bytes N] [--seed N] [--min-frequency N] [--measure <heldout-dir>] [--json]\n' +
  '  N counts every id (bytes, merges and the 7 special tokens); with several sizes, --out must hold "{vocab}";\n' +
  '  --sample-bytes trains on a seeded random sample of whole files; --measure prints bytes/token on held-out code';

function parse(args: string[]) {
  const { values, positionals } = parseCommandArgs(args, {
    vocab: { type: 'string' },
    out: { type: 'string' },
    'sample-bytes': { type: 'string' },
    seed: { type: 'string' },
    'min-frequency': { type: 'string' },
    measure: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length !== 1) throw new UsageError('expected one corpus folder');
  if (values.vocab === undefined || values.out === undefined) throw new UsageError('--vocab and --out are required');
  const sizes = values.vocab.split(',').map((v) => parseNonNegativeInt('vocab', v.trim(), 0));
  const least = 256 + KILN_SPECIAL_TOKENS.length;
  if (sizes.some((n) => n < least)) throw new UsageError(`--vocab sizes must be at least ${least}`);
  if (sizes.length > 1 && !values.out.includes('{vocab}')) throw new UsageError('with several --vocab sizes, --out must contain "{vocab}"');
  return {
    corpus: positionals[0]!,
    sizes: [...new Set(sizes)].sort((a, b) => a - b),
    out: values.out,
    sampleBytes: parseNonNegativeInt('sample-bytes', values['sample-bytes'], 0),
    seed: parseNonNegativeInt('seed', values.seed, 0),
    minFrequency: parseNonNegativeInt('min-frequency', values['min-frequency'], 2),
    measure: values.measure,
    json: values.json === true,
  };
}

/** The files under `dir` (sorted); with `sampleBytes`, a seeded random choice of whole files up to that many bytes. */
export async function* corpusFiles(dir: string, sampleBytes = 0, seed = 0): AsyncGenerator<MeasuredFile> {
  let paths = (await walkWorkspace(dir, { maxEntries: 10_000_000 })).files.sort();
  if (sampleBytes > 0) {
    const rank = new Map(paths.map((p) => [p, keyedRandom(seed, p)()]));
    paths = [...paths].sort((a, b) => rank.get(a)! - rank.get(b)! || (a < b ? -1 : 1));
  }
  let bytes = 0;
  for (const path of paths) {
    if (sampleBytes > 0 && bytes >= sampleBytes) return;
    const data = await readFile(join(dir, path));
    bytes += data.length;
    yield { path, text: data.toString('utf8') };
  }
}

async function measure(dir: string, heldOut: string): Promise<Measurement> {
  const tokenizer = Tokenizer.load(dir);
  const files: MeasuredFile[] = [];
  for await (const f of corpusFiles(heldOut)) files.push(f);
  return measureTokenizer(tokenizer, files);
}

const seconds = (since: number) => (Date.now() - since) / 1000;

export async function runTokenizerTrain(args: string[], out: (text: string) => void): Promise<number> {
  const o = withUsage(USAGE, () => parse(args));
  const log = (line: string) => {
    if (!o.json) out(line);
  };
  let started = Date.now();
  const counter = new WordCounter();
  let files = 0;
  for await (const f of corpusFiles(o.corpus, o.sampleBytes, o.seed)) {
    counter.add(f.text);
    files++;
  }
  const countSeconds = seconds(started);
  log(`counted ${counter.counts.size} distinct words in ${files} files (${(counter.chars / 1e6).toFixed(1)} M chars) in ${countSeconds.toFixed(1)} s`);

  started = Date.now();
  const largest = o.sizes[o.sizes.length - 1]!;
  const learned = learnMerges(counter.counts, { tokens: largest - KILN_SPECIAL_TOKENS.length, minFrequency: o.minFrequency });
  const mergeSeconds = seconds(started);
  log(`learned ${learned.merges.length} merges in ${mergeSeconds.toFixed(1)} s (${Math.round(learned.merges.length / Math.max(mergeSeconds, 1e-3))} merges/s)`);

  const results = [];
  let failures = 0;
  for (const size of o.sizes) {
    const tokens = Math.min(size - KILN_SPECIAL_TOKENS.length, learned.tokens.length);
    const dir = o.out.replaceAll('{vocab}', String(size));
    const vocabulary = vocabularyOf(truncateMerges(learned, tokens));
    writeTokenizerFiles(dir, vocabulary);
    const result: { vocab: number; dir: string; measured?: Measurement } = { vocab: tokens + KILN_SPECIAL_TOKENS.length, dir };
    if (o.measure !== undefined) {
      const m = await measure(dir, o.measure);
      result.measured = m;
      failures += m.roundTripFailures.length;
      const langs = Object.entries(m.byLanguage)
        .map(([l, c]) => `${l} ${c.bytesPerToken.toFixed(3)}`)
        .join(', ');
      log(`vocab ${result.vocab}: ${m.bytesPerToken.toFixed(3)} bytes/token on ${m.files} held-out files (${langs}); round-trip failures: ${m.roundTripFailures.length}`);
    } else {
      log(`vocab ${result.vocab}: wrote ${dir}`);
    }
    results.push(result);
  }
  if (o.json) out(JSON.stringify({ files, words: counter.counts.size, countSeconds, mergeSeconds, merges: learned.merges.length, results }, null, 2));
  for (const r of results) for (const path of r.measured?.roundTripFailures ?? []) out(`round-trip failure (vocab ${r.vocab}): ${path}`);
  return failures > 0 ? 1 : 0;
}
