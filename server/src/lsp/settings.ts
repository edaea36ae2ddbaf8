// The `kiln.*` settings as a typed object, validated field by field: an invalid value is reported
// by name and the previous (or default) value is kept, so a typo never stops completions.
import { type CompletionSettings, DEFAULT_COMPLETION_SETTINGS } from '../completion/completion-settings';
import { EXECUTION_PROVIDER_CHOICES, type ExecutionProviderChoice } from '../runtime/execution-provider';
import { SESSION_THREAD_CHOICES, type SessionThreadChoice } from '../runtime/load-model';
import { QUANTIZATION_SETTINGS, type QuantizationSetting } from '../runtime/quantization-choice';
import { CONTEXT_SOURCES } from '../context/snippet';
import { type BackendSettings, DEFAULT_BACKEND_SETTINGS, parseBackendSettings } from '../remote/backend-settings';

export type { CompletionMode } from '../completion/completion-settings';
export type FimOrderSetting = 'auto' | 'psm' | 'spm';

/** The completion engine's settings plus how the model is found, loaded and prompted. */
export interface KilnSettings extends CompletionSettings {
  modelPath: string; // '' = the embedded default model
  adapterPath: string; // '' = none; a PEFT LoRA adapter applied on the model (set after a fine-tune)
  executionProvider: ExecutionProviderChoice;
  quantization: QuantizationSetting; // auto = what `kiln model quantize` recommended for the model, on the CPU
  threads: number; // 0 = automatic
  graphCacheLimitGB: number; // the built-graph cache's size cap (least recently used go first)
  sessionThread: SessionThreadChoice; // where the ORT session lives (runtime/worker-session.ts)
  fimOrder: FimOrderSetting;
  /** `kiln.backend.*`: the local model (default) or a remote inference server the user chose. */
  backend: BackendSettings;
  /** A running fine-tune is held stopped while completions are asked for (finetune/typing-yield.ts). */
  'fineTune.yieldToTyping': boolean;
}

export const DEFAULT_SETTINGS: KilnSettings = {
  modelPath: '',
  adapterPath: '',
  executionProvider: 'auto',
  quantization: 'auto',
  threads: 0,
  graphCacheLimitGB: 16,
  sessionThread: 'auto',
  fimOrder: 'auto',
  backend: DEFAULT_BACKEND_SETTINGS,
  'fineTune.yieldToTyping': true,
  ...DEFAULT_COMPLETION_SETTINGS,
};

type Rule = (v: unknown) => string | undefined; // an error message, or undefined when valid

const int =
  (min: number, max: number): Rule =>
  (v) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? undefined : `must be an integer from ${min} to ${max}`;
const real =
  (min: number, max: number): Rule =>
  (v) =>
    typeof v === 'number' && v >= min && v <= max ? undefined : `must be a number from ${min} to ${max}`;
const oneOf =
  (values: readonly string[]): Rule =>
  (v) =>
    typeof v === 'string' && values.includes(v) ? undefined : `must be one of ${values.join(', ')}`;
const bool: Rule = (v) => (typeof v === 'boolean' ? undefined : 'must be true or false');
const str: Rule = (v) => (typeof v === 'string' ? undefined : 'must be a string');
const listOf =
  (values: readonly string[]): Rule =>
  (v) =>
    Array.isArray(v) && v.every((x) => typeof x === 'string' && values.includes(x)) ? undefined : `must be a list of ${values.join(', ')}`;

const RULES: { [K in Exclude<keyof KilnSettings, 'backend'>]: Rule } = {
  modelPath: str,
  adapterPath: str,
  executionProvider: oneOf(EXECUTION_PROVIDER_CHOICES),
  quantization: oneOf(QUANTIZATION_SETTINGS),
  threads: int(0, 256),
  graphCacheLimitGB: int(1, 4096),
  sessionThread: oneOf(SESSION_THREAD_CHOICES),
  maxTokens: int(1, 1024),
  temperature: real(0, 5),
  topP: real(0.01, 1),
  completionMode: oneOf(['line', 'block', 'auto']),
  maxPrefixTokens: int(16, 32768),
  maxSuffixTokens: int(0, 8192),
  kvBudgetMB: int(8, 65536),
  fimOrder: oneOf(['auto', 'psm', 'spm']),
  timeLimitMs: int(50, 60000),
  candidates: int(1, 8),
  speculate: bool,
  lookupDecoding: bool,
  tokenHealing: bool,
  'context.enabled': bool,
  'context.sources': listOf(CONTEXT_SOURCES),
  'context.maxTokens': int(0, 32768),
  prewarm: bool,
  psmTypedMiddle: bool,
  'fineTune.yieldToTyping': bool,
};

/** A dotted key's value: VS Code hands `kiln.context.enabled` over as `{ context: { enabled } }`; a flat key is taken too. */
function valueAt(raw: Record<string, unknown>, key: string): unknown {
  if (key in raw) return raw[key];
  let at: unknown = raw;
  for (const part of key.split('.')) at = at !== null && typeof at === 'object' && !Array.isArray(at) ? (at as Record<string, unknown>)[part] : undefined;
  return at;
}

export interface SettingsUpdate {
  settings: KilnSettings;
  /** One line per rejected field, e.g. `kiln.maxTokens: must be an integer from 1 to 1024 (got -3); keeping 64`. */
  problems: string[];
}

/** Merges a raw `kiln` configuration object over `previous`, rejecting invalid fields one by one. */
export function parseSettings(raw: unknown, previous: KilnSettings = DEFAULT_SETTINGS): SettingsUpdate {
  const settings: KilnSettings = { ...previous };
  const problems: string[] = [];
  if (raw === null || raw === undefined) return { settings, problems };
  if (typeof raw !== 'object' || Array.isArray(raw)) return { settings, problems: ['kiln: settings must be an object'] };
  for (const key of Object.keys(RULES) as (keyof typeof RULES)[]) {
    const value = valueAt(raw as Record<string, unknown>, key);
    if (value === undefined || value === null) continue;
    const problem = RULES[key](value);
    if (problem) problems.push(`kiln.${key}: ${problem} (got ${JSON.stringify(value)}); keeping ${JSON.stringify(previous[key])}`);
    else (settings as unknown as Record<string, unknown>)[key] = Array.isArray(value) ? [...(value as unknown[])] : value;
  }
  const backend = parseBackendSettings((raw as Record<string, unknown>).backend, previous.backend);
  settings.backend = backend.settings;
  problems.push(...backend.problems);
  return { settings, problems };
}

/** Settings whose change needs the model reloaded (the rest apply to the next request). */
export function needsReload(a: KilnSettings, b: KilnSettings): boolean {
  return (
    a.modelPath !== b.modelPath ||
    a.adapterPath !== b.adapterPath ||
    a.executionProvider !== b.executionProvider ||
    a.quantization !== b.quantization ||
    a.threads !== b.threads ||
    a.sessionThread !== b.sessionThread
  );
}
