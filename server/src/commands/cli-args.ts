// Shared command-line plumbing: typed option parsing with errors that name the problem.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DEFAULT_ATTENTION } from '../runtime/load-model';
import { EXECUTION_PROVIDER_CHOICES, type ExecutionProviderChoice } from '../runtime/execution-provider';
import { QUANTIZATION_SETTINGS, type QuantizationSetting } from '../runtime/quantization-choice';

export class UsageError extends Error {}

/** Runs a command's argument parsing so that every UsageError it throws ends with the command's usage. */
export function withUsage<T>(usage: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`${err.message}\n${usage}`);
    throw err;
  }
}

export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function parseExecutionProvider(value: string | undefined): ExecutionProviderChoice {
  const v = value ?? 'auto';
  if (!EXECUTION_PROVIDER_CHOICES.includes(v as ExecutionProviderChoice)) {
    throw new UsageError(`--ep must be one of ${EXECUTION_PROVIDER_CHOICES.join(', ')}, got "${v}"`);
  }
  return v as ExecutionProviderChoice;
}

export function parseNonNegativeInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}

/** Options every model-loading command accepts. */
export const MODEL_OPTIONS = {
  ep: { type: 'string' },
  threads: { type: 'string' },
  cache: { type: 'string' },
  attention: { type: 'string' },
  dtype: { type: 'string' },
  quantization: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** `--quantization auto|none|int8|int4` (default auto, like the `kiln.quantization` setting). */
export function parseQuantization(value: string | undefined): QuantizationSetting {
  const v = value ?? 'auto';
  if (!QUANTIZATION_SETTINGS.includes(v as QuantizationSetting)) throw new UsageError(`--quantization must be one of ${QUANTIZATION_SETTINGS.join(', ')}, got "${v}"`);
  return v as QuantizationSetting;
}

export function parseModelOptions(values: { ep?: string; threads?: string; cache?: string; attention?: string; dtype?: string }) {
  const attention = values.attention ?? DEFAULT_ATTENTION;
  if (attention !== 'fused' && attention !== 'plain') throw new UsageError(`--attention must be fused or plain, got "${attention}"`);
  const dtype = values.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new UsageError(`--dtype must be f32 or f16, got "${dtype}"`);
  return {
    executionProvider: parseExecutionProvider(values.ep),
    threads: parseNonNegativeInt('threads', values.threads, 0),
    cacheDir: values.cache,
    attention: attention as 'fused' | 'plain',
    weightType: dtype === 'f16' ? ('float16' as const) : ('float32' as const),
  };
}
