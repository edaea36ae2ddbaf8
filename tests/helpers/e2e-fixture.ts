// The end-to-end fixture: a seeded tiny model written at test time, settings that point Kiln at it
// (`kiln.modelPath` is machine-scoped: only user or machine settings can set it) and a one-file workspace
// whose `.vscode/settings.json` holds the settings `kiln complete` uses, so what the editor shows can
// be compared with what the CLI answers for the same text and position. The workspace also plants
// a hostile `kiln.modelPath`, which Kiln must ignore.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { parseSettings } from '../../server/src/lsp/settings';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { CLI, runKilnAt } from './built-cli';
import { TEST_SETTINGS, writeTinyCodeModel } from './tiny-code-model';

const MAX_TOKENS = 8;
const SEEDS_TRIED = 300;
export const FILE = 'config.py';
export const BEFORE_TYPING = 'import os\n\n\ndef read_config(path):\n    with open(path) as handle:\n        text';
export const TYPED = ' =';

export interface E2eFixture {
  modelDir: string;
  /**
   * Machine-scoped settings (where the model is). A desktop VS Code reads them from user settings;
   * code-server's window is a remote one, which reads them from its Machine settings only.
   */
  machineSettings: Record<string, unknown>;
  /** The model's seed: the first whose suggestion suits the test (see findSeed). */
  seed: number;
  workspace: string;
  /** The workspace's `.vscode/settings.json`. */
  settingsFile: string;
  /** `FILE` inside the workspace. */
  file: string;
}

/** The greedy suggestion after each prefix of TYPED (fresh engines: no typing-through between them). */
async function suggestionsWhileTyping(modelDir: string, cacheDir: string): Promise<string[]> {
  const model = await loadCompletionModel(modelDir, { fimOrder: 'auto', quantization: 'auto' }, { executionProvider: 'cpu', threads: 1, cacheDir });
  const settings = { ...parseSettings({ completionMode: 'auto', maxTokens: MAX_TOKENS, candidates: 1 }).settings, speculate: false };
  try {
    const out: string[] = [];
    for (let i = 0; i <= TYPED.length; i++) {
      const text = BEFORE_TYPING + TYPED.slice(0, i);
      const answer = await new CompletionEngine(model, settings, new LatencyStats()).complete({ uri: 'file:///probe.py', text, offset: text.length });
      out.push(answer.items[0] ?? '');
    }
    return out;
  } finally {
    await model.loaded.session.release();
  }
}

/**
 * A random tiny model mostly suggests bytes that are not text. The first seed whose last suggestion
 * is visible ASCII (two or more non-space characters), and none of whose earlier suggestions starts
 * with the next typed character (so the editor's last suggestion comes from the model, not from
 * typing through an earlier one), makes the ghost-text comparison meaningful. Searched at test time
 * so changes to how tiny models are made cannot silently empty the test.
 */
async function findSeed(root: string): Promise<{ seed: number; modelDir: string }> {
  for (let seed = 1; seed <= SEEDS_TRIED; seed++) {
    const modelDir = join(root, `model-${seed}`);
    writeTinyCodeModel(modelDir, { seed });
    const shown = await suggestionsWhileTyping(modelDir, join(root, 'probe-cache'));
    const last = shown.at(-1)!;
    const typedThrough = shown.slice(0, -1).some((s, i) => s.length > 0 && s[0] === TYPED[i]);
    if (/^[\x20-\x7e]+$/.test(last) && last.replace(/ /g, '').length >= 2 && !typedThrough) return { seed, modelDir };
    rmSync(modelDir, { recursive: true, force: true });
  }
  throw new Error(`none of seeds 1..${SEEDS_TRIED} gives a visible suggestion after typing ${JSON.stringify(TYPED)}`);
}

/** What `kiln complete` does, as `kiln.*` settings: TEST_SETTINGS, completionMode auto (the default), one candidate, MAX_TOKENS. */
export const CLI_EQUIVALENT_SETTINGS: Record<string, unknown> = {
  'kiln.executionProvider': TEST_SETTINGS.executionProvider,
  'kiln.threads': TEST_SETTINGS.threads,
  'kiln.temperature': TEST_SETTINGS.temperature,
  'kiln.speculate': TEST_SETTINGS.speculate,
  'kiln.candidates': 1,
  'kiln.maxTokens': MAX_TOKENS,
};

/** Editor settings that make typing put exactly the typed characters into the document. */
export const PLAIN_TYPING_SETTINGS: Record<string, unknown> = {
  'editor.autoClosingBrackets': 'never',
  'editor.autoClosingQuotes': 'never',
  'editor.autoIndent': 'none',
  'files.insertFinalNewline': false,
};

/** A workspace folder `name` under `root` with `FILE` (BEFORE_TYPING) and these `.vscode/settings.json` values. */
export function writeWorkspace(root: string, name: string, settings: Record<string, unknown>): { workspace: string; settingsFile: string; file: string } {
  const workspace = join(root, name);
  mkdirSync(join(workspace, '.vscode'), { recursive: true });
  const settingsFile = join(workspace, '.vscode', 'settings.json');
  writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
  const file = join(workspace, FILE);
  writeFileSync(file, BEFORE_TYPING);
  return { workspace, settingsFile, file };
}

export async function writeE2eFixture(root: string): Promise<E2eFixture> {
  const { seed, modelDir } = await findSeed(root);
  const settings = {
    // Planted by the repository; machine scope keeps it out (the server would not get ready otherwise).
    'kiln.modelPath': join(root, 'hostile-model'),
    ...CLI_EQUIVALENT_SETTINGS,
    'kiln.fineTune.maxSteps': 3, // a few steps on the one-file workspace: proves the path, quickly
    ...PLAIN_TYPING_SETTINGS,
  };
  const { workspace, settingsFile, file } = writeWorkspace(root, 'workspace', settings);
  return { modelDir, machineSettings: { 'kiln.modelPath': modelDir }, seed, workspace, settingsFile, file };
}

/** What `kiln complete` (the CLI at `cli`) answers at the end of `text`, from a fresh process with a cold cache. */
export async function cliCompletion(fixture: E2eFixture, root: string, text: string, cli = CLI): Promise<string> {
  const file = join(root, 'expected.py');
  writeFileSync(file, text);
  const lines = text.split('\n');
  const r = await runKilnAt(
    cli,
    'complete',
    file,
    '--line',
    String(lines.length),
    '--col',
    String(lines.at(-1)!.length + 1),
    '--model',
    fixture.modelDir,
    '--ep',
    'cpu',
    '--threads',
    '1',
    '--max-tokens',
    String(MAX_TOKENS),
    '--cache',
    join(root, 'cli-cache'),
    '--json',
  );
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { completion: string }).completion;
}
