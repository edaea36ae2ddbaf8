// Scrubs secrets out of source text: a line that holds one is blanked (emptied, its line break kept,
// so line numbers and the shape of the file stay), and a private-key block is blanked whole.
//
// Vendor keys (AWS, GitHub, Slack, SendGrid, Stripe, npm, OpenAI, Anthropic, Hugging Face, GitLab,
// Shopify, Vault, database URLs, …) come from secretlint's maintained recommended preset
// (@secretlint/secretlint-rule-preset-recommend, MIT), run synchronously by vendor-rules.ts; Kiln's
// own rules cover what the preset does not, each with its reason: line-rules.ts (URLs with any
// password, headers, curl, vendor shapes the preset lacks), command-rules.ts (password flags,
// connection strings, Go DSNs, npm auth), assignments.ts (values bound to secret-like names in any
// syntax, `NAME=value` inside a line too), positional-rules.ts (names bound by position: call
// arguments, env defaults, basic-auth pairs, prose), block-rules.ts (PEM/PuTTY keys, Kubernetes
// Secrets, netrc) and document-rules.ts (YAML block values, Markdown tables).
import { secretAssignment, type ValueContext } from './assignments';
import { type LineMarks, markBlocks } from './block-rules';
import { COMMAND_RULES } from './command-rules';
import { markDocuments } from './document-rules';
import { FALLBACK_RULES, findShapes, LINE_RULES } from './line-rules';
import { positionalSecret } from './positional-rules';
import { findVendorSecrets } from './vendor-rules';

export { isIdentifierLike, looksLikeKeyMaterial, looksRandom, shannonEntropy } from './entropy';
export { vendorRuleNames } from './vendor-rules';

/** A rule's name: `secretlint/aws`, `url-credentials`, `password-assignment`, `keyed-secret`, `private-key`, …. */
export type SecretKind = string;

export interface ScrubResult {
  text: string;
  /** 1-based numbers of the blanked lines. */
  lines: number[];
  /** Blanked lines by the rule that found them (each line counted once, under the first rule). */
  byKind: Partial<Record<SecretKind, number>>;
}

export interface ScrubOptions {
  /** The file's path: its kind decides whether bare values are literals (`.env`, YAML) or code. */
  path?: string;
}

/** Files whose bare values are literals: configuration, shell, documents. */
const CONFIG_EXTENSIONS = new Set([
  'yaml',
  'yml',
  'toml',
  'ini',
  'cfg',
  'conf',
  'properties',
  'env',
  'sh',
  'bash',
  'zsh',
  'fish',
  'ps1',
  'bat',
  'cmd',
  'dockerfile',
  'tf',
  'hcl',
  'md',
  'mdx',
  'rst',
  'txt',
  'json',
  'jsonc',
  'json5',
  'xml',
  'mk',
  'make',
  'nix',
]);
const CONFIG_NAMES = new Set(['dockerfile', 'containerfile', 'makefile', 'gnumakefile', 'procfile', 'justfile']);

function contextOf(path: string | undefined): { context: ValueContext; ext: string } {
  if (path === undefined) return { context: 'unknown', ext: '' };
  const name = path.slice(path.lastIndexOf('/') + 1).toLowerCase();
  const dot = name.lastIndexOf('.');
  const ext = dot <= 0 ? '' : name.slice(dot + 1);
  const config = CONFIG_EXTENSIONS.has(ext) || CONFIG_NAMES.has(name) || name.startsWith('dockerfile');
  return { context: config ? 'config' : 'code', ext: ext === '' ? '' : `.${ext}` };
}

/** Index of the line holding character `offset`, given each line's start offset (ascending). */
function lineAt(starts: readonly number[], offset: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The rule that makes each line secret (undefined for a clean line). */
function markLines(text: string, lines: readonly string[], starts: readonly number[], options: ScrubOptions): LineMarks {
  const marks: LineMarks = new Array(lines.length).fill(undefined);
  const { context, ext } = contextOf(options.path);
  const markSpan = (span: { rule: string; start: number; end: number }) => {
    const last = lineAt(starts, Math.max(span.start, span.end - 1));
    for (let i = lineAt(starts, span.start); i <= last; i++) marks[i] ??= span.rule;
  };
  findVendorSecrets(text, ext === '.json' ? ext : '').forEach(markSpan);
  markBlocks(lines, marks);
  markDocuments(lines, marks, context);
  findShapes(text).forEach(markSpan);
  for (const [i, line] of lines.entries()) {
    if (marks[i] !== undefined || line.length === 0) continue;
    const named =
      LINE_RULES.find((rule) => rule.test(line))?.name ?? COMMAND_RULES.find((rule) => rule.test(line))?.name ?? secretAssignment(line, context) ?? positionalSecret(line, context);
    marks[i] = named ?? FALLBACK_RULES.find((rule) => rule.test(line))?.name;
  }
  return marks;
}

/** `text` with every line holding a secret blanked; line breaks (CRLF too) are kept. */
export function scrubSecrets(text: string, options: ScrubOptions = {}): ScrubResult {
  const parts = text.split(/(\r?\n)/); // lines at even indices, their breaks at odd ones
  const lines = parts.filter((_, i) => i % 2 === 0);
  const starts: number[] = [];
  for (let i = 0, offset = 0; i < parts.length; i++) {
    if (i % 2 === 0) starts.push(offset);
    offset += parts[i]!.length;
  }
  const marks = markLines(text, lines, starts, options);
  const blanked: number[] = [];
  const byKind: Partial<Record<SecretKind, number>> = {};
  for (const [i, rule] of marks.entries()) {
    if (rule === undefined || lines[i]!.length === 0) continue;
    parts[2 * i] = '';
    blanked.push(i + 1);
    byKind[rule] = (byKind[rule] ?? 0) + 1;
  }
  return { text: parts.join(''), lines: blanked, byKind };
}

/** The rule that finds a secret on this one line, or undefined. */
export function lineSecret(line: string, options: ScrubOptions = {}): SecretKind | undefined {
  return Object.keys(scrubSecrets(line, options).byKind)[0];
}
