// Packs examples into fixed-length training sequences: input ids and next-token labels of exactly
// `seqLen` each, examples kept whole where they fit, padding labelled with the ignore index.
import { IGNORE_INDEX } from '../model/graph/ops-nn';
import { keyedRandom, shuffleInPlace } from './random';

/** Label of a position that is not trained on: the loss in the training graph skips it. */
export { IGNORE_INDEX };

export interface PackableExample {
  tokens: readonly number[];
  /** loss[i] = 1 when tokens[i] is a target. */
  loss: Uint8Array;
}

export interface PackedSequence {
  inputIds: Int32Array;
  /**
   * labels[i] is the token that follows inputIds[i] within the same example, or IGNORE_INDEX where
   * that token is not a target, at an example's last position and on padding. The trainer uses
   * labels[i] as the target of position i: the shift is already done.
   */
  labels: Int32Array;
}

export interface PackOptions {
  seqLen: number;
  padId: number;
  seed: number;
  /** Keys the shuffle's random stream, so train and validation shuffle independently. */
  key?: string;
  /** Bins still open for first-fit placement (default 32); older ones are closed. */
  openBins?: number;
}

export interface PackResult {
  sequences: PackedSequence[];
  paddingTokens: number;
  /** Positions whose label is a token. */
  targetTokens: number;
}

interface Segment {
  tokens: readonly number[];
  loss: Uint8Array;
}

/**
 * An example longer than `seqLen`, cut into segments of `seqLen` that overlap by one token, so that
 * every token after the first is a target exactly once across the segments.
 */
export function segmentExample(example: PackableExample, seqLen: number): Segment[] {
  if (example.tokens.length <= seqLen) return [example];
  const segments: Segment[] = [];
  for (let start = 0; start < example.tokens.length - 1; start += seqLen - 1) {
    const end = Math.min(start + seqLen, example.tokens.length);
    segments.push({ tokens: example.tokens.slice(start, end), loss: example.loss.subarray(start, end) });
  }
  return segments;
}

/** Shuffles the examples (seeded), segments the long ones and places them first-fit into bins. */
export function packExamples(examples: readonly PackableExample[], options: PackOptions): PackResult {
  const { seqLen, padId } = options;
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new RangeError(`seqLen must be an integer >= 2, got ${seqLen}`);
  const ordered = shuffleInPlace([...examples], keyedRandom(options.seed, options.key ?? 'pack'));
  const bins: { segments: Segment[]; used: number }[] = [];
  let open: typeof bins = [];
  for (const segment of ordered.flatMap((e) => segmentExample(e, seqLen))) {
    if (segment.tokens.length === 0) continue;
    let bin = open.find((b) => b.used + segment.tokens.length <= seqLen);
    if (bin === undefined) {
      bin = { segments: [], used: 0 };
      bins.push(bin);
      open.push(bin);
      if (open.length > (options.openBins ?? 32)) open.shift();
    }
    bin.segments.push(segment);
    bin.used += segment.tokens.length;
    if (bin.used === seqLen) open = open.filter((b) => b !== bin);
  }

  let paddingTokens = 0;
  let targetTokens = 0;
  const sequences = bins.map((bin) => {
    const inputIds = new Int32Array(seqLen).fill(padId);
    const labels = new Int32Array(seqLen).fill(IGNORE_INDEX);
    let at = 0;
    for (const { tokens, loss } of bin.segments) {
      inputIds.set(tokens, at);
      for (let j = 0; j + 1 < tokens.length; j++) {
        if (loss[j + 1] !== 1) continue;
        labels[at + j] = tokens[j + 1]!;
        targetTokens++;
      }
      at += tokens.length;
    }
    paddingTokens += seqLen - at;
    return { inputIds, labels };
  });
  return { sequences, paddingTokens, targetTokens };
}
