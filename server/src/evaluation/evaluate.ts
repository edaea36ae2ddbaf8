// Evaluation on held-out files, run before and after every fine-tune so each one ends with a
// measured gain: validation loss (next-token cross-entropy on the plain text, no FIM) and next-line
// exact match / edit similarity from the real completion engine on sampled lines.
import type { CompletionModel } from '../completion/completion-model';
import { type CompletionSettings, DEFAULT_COMPLETION_SETTINGS } from '../completion/completion-settings';
import { CompletionEngine } from '../completion/engine';
import type { ContextSourceName } from '../context/snippet';
import type { ContextSupplier } from '../context/supplier';
import type { DecoderSession } from '../runtime/decoder-session';
import { LatencyStats } from '../telemetry/latency-stats';

export interface EvalFile {
  path: string;
  text: string;
}

export interface EvalSample {
  path: string;
  line: number; // 1-based
  expected: string; // the rest of the line from its first non-blank character, trimmed
  got: string; // the completion, trimmed
}

export interface EvalProgress {
  phase: 'loss' | 'lines';
  done: number;
  total: number;
}

export interface EvalOptions {
  /** Lines sampled over all files (default 200). */
  maxLines?: number;
  /** Line sampling seed (default 0): the same seed samples the same lines. */
  seed?: number;
  /** Window of the validation loss, in tokens (default 512, at most the model's positions). */
  contextTokens?: number;
  /** Tokens scored for the validation loss over all files, shared evenly (default 32,768). */
  maxLossTokens?: number;
  /** Prompt windows and layout other than the defaults (e.g. the prefill budget's shorter window). */
  prompt?: Partial<Pick<CompletionSettings, 'maxPrefixTokens' | 'maxSuffixTokens' | 'psmTypedMiddle'>>;
  signal?: AbortSignal;
  onProgress?: (progress: EvalProgress) => void;
  /** Context from the rest of the workspace, as the editor builds it (none: the file alone). */
  context?: EvalContext;
  /**
   * A wall-clock bound on the whole evaluation, in seconds (a time-budgeted fine-tune of a real-size
   * model, where 100 lines alone can take many minutes): the validation loss gets at most a third of
   * it, its token count sized from one timed forward, and lines are scored spread over the files
   * until it is spent. To score the very same tokens and lines again, pass the report's `tokens` as
   * `maxLossTokens` and the result's `scoredLines` as `lines`.
   */
  maxSeconds?: number;
  /** Score exactly these lines, in this order (another evaluation's `scoredLines`), instead of sampling. */
  lines?: readonly EvalLine[];
}

/** What the engine's context block is drawn from when lines are scored. */
export interface EvalContext {
  supplier: ContextSupplier;
  sources: readonly ContextSourceName[];
  /** The document URI of an evaluated file's path (what the supplier maps back to a workspace path). */
  uriOf: (path: string) => string;
  /** kiln.context.maxTokens (default the editor's). */
  maxTokens?: number;
}

/** NaN marks a figure with nothing to measure (no lines, or no tokens); JSON writes it as null. */
export interface EvalReport {
  files: number;
  lines: number;
  /** Fraction of lines whose trimmed completion equals the trimmed rest of the line. */
  exactMatch: number;
  /** Mean of 1 − Levenshtein / max length over the lines. */
  editSimilarity: number;
  /** Mean next-token cross-entropy in nats. */
  validationLoss: number;
  /** Tokens the validation loss is the mean over. */
  tokens: number;
  /** The first lines evaluated. */
  samples: EvalSample[];
}

/** A line chosen for next-line evaluation; offsets are UTF-16 indexes into the file's text. */
export interface EvalLine {
  file: number;
  path: string;
  line: number; // 1-based
  /** The cursor: the line's first non-blank character. */
  cursor: number;
  /** The end of the line's content (before "\r\n" or "\n"). */
  end: number;
}

const SAMPLES_KEPT = 10;
/** Longer lines (data, minified code) are not sampled; edit distance also looks at this much. */
const MAX_LINE_CHARS = 400;
/** Tokens per forward call of the validation loss: bounds the [S, V] logits of large vocabularies. */
const LOSS_CHUNK = 128;

/** Worth predicting: at least 6 characters and 3 letters or digits (not brackets, rules, comment markers). */
export function isNonTrivialLine(content: string): boolean {
  const t = content.trim();
  return t.length >= 6 && t.length <= MAX_LINE_CHARS && (t.match(/[\p{L}\p{N}]/gu)?.length ?? 0) >= 3;
}

/** Splits `total` over items of the given capacities as evenly as they allow (water-filling). */
export function evenShares(capacities: readonly number[], total: number): number[] {
  const shares = capacities.map(() => 0);
  let left = Math.max(0, Math.floor(total));
  let open = capacities.flatMap((c, i) => (c > 0 ? [i] : []));
  while (left > 0 && open.length > 0) {
    const each = Math.max(1, Math.floor(left / open.length));
    for (const i of open) {
      const take = Math.min(each, capacities[i]! - shares[i]!, left);
      shares[i]! += take;
      left -= take;
    }
    open = open.filter((i) => shares[i]! < capacities[i]!);
  }
  return shares;
}

/** A seeded 32-bit hash of (seed, path, line): the sampling order of a file's lines. */
function rank(seed: number, path: string, line: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const ch of `${path}\0${line}`) h = Math.imul(h ^ ch.codePointAt(0)!, 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}

/** The non-trivial lines of one file, in file order. */
function candidateLines(file: EvalFile, index: number): EvalLine[] {
  const out: EvalLine[] = [];
  const text = file.text;
  for (let start = 0, n = 1; start <= text.length; n++) {
    const newline = text.indexOf('\n', start);
    const next = newline < 0 ? text.length + 1 : newline + 1;
    const end = newline < 0 ? text.length : newline > start && text[newline - 1] === '\r' ? newline - 1 : newline;
    const content = text.slice(start, end);
    if (isNonTrivialLine(content)) out.push({ file: index, path: file.path, line: n, cursor: end - content.trimStart().length, end });
    start = next;
  }
  return out;
}

/** Up to `maxLines` non-trivial lines shared evenly over the files, chosen by `seed`, in file order. */
export function sampleLines(files: readonly EvalFile[], maxLines: number, seed: number): EvalLine[] {
  const candidates = files.map(candidateLines);
  const shares = evenShares(
    candidates.map((c) => c.length),
    maxLines,
  );
  return candidates.flatMap((lines, i) =>
    lines
      .map((l) => ({ l, r: rank(seed, l.path, l.line) }))
      .sort((a, b) => a.r - b.r || a.l.line - b.l.line)
      .slice(0, shares[i])
      .map((x) => x.l)
      .sort((a, b) => a.line - b.line),
  );
}

/** The document the engine sees for a line: its content from the cursor removed, the cursor there. */
export function lineTask(text: string, line: EvalLine): { text: string; offset: number; expected: string } {
  return { text: text.slice(0, line.cursor) + text.slice(line.end), offset: line.cursor, expected: text.slice(line.cursor, line.end) };
}

/** Edit distance over code points, both strings cut to their first 400 code points. */
export function levenshtein(a: string, b: string): number {
  const x = Array.from(a).slice(0, MAX_LINE_CHARS);
  const y = Array.from(b).slice(0, MAX_LINE_CHARS);
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[y.length]!;
}

/** 1 − distance / longer length (over the same cut code points); two empty strings are identical. */
export function editSimilarity(a: string, b: string): number {
  const longer = Math.min(MAX_LINE_CHARS, Math.max(Array.from(a).length, Array.from(b).length));
  return longer === 0 ? 1 : 1 - levenshtein(a, b) / longer;
}

/** Scores one completion against the real rest of the line, both trimmed. */
export function compareLine(expected: string, got: string): { exact: boolean; similarity: number } {
  const e = expected.trim();
  const g = got.trim();
  return { exact: e === g, similarity: editSimilarity(e, g) };
}

/** −log softmax(row)[target] of row `row` of logits [S, V]. */
function crossEntropy(logits: Float32Array, row: number, V: number, target: number): number {
  const base = row * V;
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[base + v]!);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[base + v]! - max);
  return max + Math.log(sum) - logits[base + target]!;
}

/**
 * Summed cross-entropy of tokens[1..] given what precedes them, in windows of `context` tokens moved
 * by half a window: each window scores only the tokens no earlier window scored, so every token after
 * the first window is predicted with at least half a window of context.
 */
export async function sequenceLoss(session: DecoderSession, tokens: readonly number[], context: number, signal?: AbortSignal): Promise<{ nll: number; count: number }> {
  const V = session.config.vocabSize;
  const stride = Math.max(1, Math.floor(context / 2));
  let nll = 0;
  let count = 0;
  for (let start = 0, scored = 1; scored < tokens.length; start += stride) {
    const end = Math.min(start + context, tokens.length);
    const state = session.newState(1);
    for (let c = start; c < end; c += LOSS_CHUNK) {
      signal?.throwIfAborted();
      const chunk = tokens.slice(c, Math.min(c + LOSS_CHUNK, end));
      // row i predicts token c + i + 1; a chunk with nothing left to score only fills the KV state
      const needed = c + chunk.length >= scored;
      const { logits } = await session.forward(state, [chunk], needed ? 'all' : 'last');
      if (!needed) continue;
      for (let i = 0; i < chunk.length; i++) {
        const target = c + i + 1;
        if (target < scored || target >= end) continue;
        nll += crossEntropy(logits, i, V, tokens[target]!);
        count++;
      }
    }
    scored = end;
  }
  return { nll, count };
}

const DEFAULT_LOSS_TOKENS = 32_768;

async function validationLoss(model: CompletionModel, files: readonly EvalFile[], options: EvalOptions): Promise<{ loss: number; tokens: number }> {
  if (options.maxLossTokens === 0) return { loss: NaN, tokens: 0 }; // asked for line scores only
  const session = model.loaded.session;
  const context = Math.max(2, Math.min(options.contextTokens ?? 512, session.config.maxPositions));
  const encoded = files.map((f) => model.tokenizer.encode(f.text));
  const total =
    options.maxLossTokens ??
    (options.maxSeconds === undefined ? DEFAULT_LOSS_TOKENS : Math.min(DEFAULT_LOSS_TOKENS, await affordableLossTokens(session, encoded, options.maxSeconds / 3, options.signal)));
  // a file's share counts scored tokens; it keeps one more (the first token is context only)
  const shares = evenShares(
    encoded.map((t) => Math.max(0, t.length - 1)),
    total,
  );
  let nll = 0;
  let count = 0;
  for (const [i, tokens] of encoded.entries()) {
    if (shares[i]! > 0) {
      const part = await sequenceLoss(session, tokens.slice(0, shares[i]! + 1), context, options.signal);
      nll += part.nll;
      count += part.count;
    }
    options.onProgress?.({ phase: 'loss', done: i + 1, total: files.length });
  }
  return { loss: count > 0 ? nll / count : NaN, tokens: count };
}

/**
 * How many loss tokens fit in `seconds`, from one timed forward of a chunk: sliding windows move by
 * half a window, so a scored token costs up to two positions of forward work.
 */
async function affordableLossTokens(session: DecoderSession, encoded: readonly (readonly number[])[], seconds: number, signal?: AbortSignal): Promise<number> {
  const longest = encoded.reduce<readonly number[]>((a, t) => (t.length > a.length ? t : a), []);
  const probe = longest.slice(0, LOSS_CHUNK);
  if (probe.length < 2) return DEFAULT_LOSS_TOKENS;
  signal?.throwIfAborted();
  const started = performance.now();
  await session.forward(session.newState(1), [probe], 'all');
  const secondsPerToken = (2 * (performance.now() - started)) / 1000 / probe.length;
  return Math.max(LOSS_CHUNK, Math.floor(seconds / secondsPerToken));
}

/** Lines taken from each file in turn (first of every file, then second, …), so any prefix is spread over the files. */
export function spreadOverFiles(lines: readonly EvalLine[]): EvalLine[] {
  const byFile = new Map<number, EvalLine[]>();
  for (const l of lines) {
    const queue = byFile.get(l.file) ?? [];
    queue.push(l);
    byFile.set(l.file, queue);
  }
  const queues = [...byFile.values()];
  const out: EvalLine[] = [];
  for (let round = 0; out.length < lines.length; round++) for (const q of queues) if (round < q.length) out.push(q[round]!);
  return out;
}

/** Greedy, single-line, no speculation, no wall-clock stop (a slow machine must not change scores). */
const EVAL_SETTINGS: CompletionSettings = { ...DEFAULT_COMPLETION_SETTINGS, completionMode: 'line', temperature: 0, speculate: false, candidates: 1, timeLimitMs: 60_000 };

/** Lines a time-bounded evaluation scores even when its time is spent. */
const MIN_BOUNDED_LINES = 2;

/** One sampled line's score. */
export interface LineScore {
  exact: boolean;
  similarity: number;
}

export interface LineScores {
  exactMatch: number;
  editSimilarity: number;
  samples: EvalSample[];
  /** In the order of the lines scored: what paired comparisons between predictors need. */
  perLine: LineScore[];
}

/** Per-line exact match and edit similarity of any predictor on the sampled lines. */
export async function scoreLines(
  files: readonly EvalFile[],
  lines: readonly EvalLine[],
  predict: (task: { text: string; offset: number }, line: EvalLine) => Promise<string>,
  options: Pick<EvalOptions, 'signal' | 'onProgress'> & { deadline?: number } = {},
): Promise<LineScores> {
  const samples: EvalSample[] = [];
  const perLine: LineScore[] = [];
  for (const [i, line] of lines.entries()) {
    options.signal?.throwIfAborted();
    // past the deadline no new line starts, though two always do (a paired interval needs two)
    if (options.deadline !== undefined && i >= MIN_BOUNDED_LINES && performance.now() > options.deadline) break;
    const task = lineTask(files[line.file]!.text, line);
    const got = await predict(task, line);
    const score = compareLine(task.expected, got);
    perLine.push(score);
    if (samples.length < SAMPLES_KEPT) samples.push({ path: line.path, line: line.line, expected: task.expected.trim(), got: got.trim() });
    options.onProgress?.({ phase: 'lines', done: i + 1, total: lines.length });
  }
  return { ...lineFigures(perLine), samples, perLine };
}

/** Exact match and edit similarity over scored lines (NaN for none). */
export function lineFigures(perLine: readonly LineScore[]): { exactMatch: number; editSimilarity: number } {
  const n = perLine.length;
  const exact = perLine.filter((s) => s.exact).length;
  const similarity = perLine.reduce((a, s) => a + s.similarity, 0);
  return { exactMatch: n ? exact / n : NaN, editSimilarity: n ? similarity / n : NaN };
}

export async function evaluateModel(model: CompletionModel, files: readonly EvalFile[], options: EvalOptions = {}): Promise<EvalReport> {
  return (await evaluateModelPerLine(model, files, options)).report;
}

/** Per context source: lines whose block held one of its snippets. */
export type SnippetLines = Partial<Record<ContextSourceName, number>>;

/** evaluateModel, with the score of every sampled line (in sampleLines order) beside the report. */
export async function evaluateModelPerLine(
  model: CompletionModel,
  files: readonly EvalFile[],
  options: EvalOptions = {},
): Promise<{ report: EvalReport; perLine: LineScore[]; scoredLines: EvalLine[]; snippetLines: SnippetLines }> {
  const deadline = options.maxSeconds === undefined ? undefined : performance.now() + options.maxSeconds * 1000;
  const { loss, tokens } = await validationLoss(model, files, options);
  const sampled = options.lines ?? sampleLines(files, options.maxLines ?? 200, options.seed ?? 0);
  const lines = deadline === undefined || options.lines ? sampled : spreadOverFiles(sampled);
  const ctx = options.context;
  const settings: CompletionSettings =
    ctx === undefined
      ? EVAL_SETTINGS
      : {
          ...EVAL_SETTINGS,
          'context.enabled': ctx.sources.length > 0,
          'context.sources': [...ctx.sources],
          'context.maxTokens': ctx.maxTokens ?? EVAL_SETTINGS['context.maxTokens'],
        };
  // One engine for the run: KV reuse across lines gives the same greedy answers as cold prompts.
  const engine = new CompletionEngine(model, { ...settings, ...options.prompt }, new LatencyStats(), ctx === undefined ? {} : { context: ctx.supplier });
  const snippetLines: SnippetLines = {};
  const scores = await scoreLines(
    files,
    lines,
    async (task, line) => {
      const uri = ctx?.uriOf(line.path) ?? line.path;
      if (ctx !== undefined)
        for (const source of new Set(engine.promptFor({ uri, ...task }).block.snippets.map((s) => s.source))) snippetLines[source] = (snippetLines[source] ?? 0) + 1;
      const answer = await engine.complete({ uri, text: task.text, offset: task.offset, signal: options.signal });
      engine.forgetDocument(uri); // each line is a fresh document: no typing-through between them
      return answer.items[0] ?? '';
    },
    { ...options, deadline },
  );
  const { perLine, ...figures } = scores;
  return { report: { files: files.length, lines: perLine.length, ...figures, validationLoss: loss, tokens }, perLine, scoredLines: lines.slice(0, perLine.length), snippetLines };
}
