// `kiln export <dir> --format gguf --out FILE [--dtype f32|f16|q8_0|q4_0]`: the CLI face of the exporters.
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ModelFileError } from '../errors';
import { exportGguf, GGUF_DTYPES, type GgufDtype } from './gguf';

const USAGE = 'usage: kiln export <model-dir> --format gguf --out FILE [--dtype f32|f16|q8_0|q4_0]';

interface ExportArgs {
  dir: string;
  format: 'gguf';
  out: string;
  dtype: GgufDtype;
}

class UsageError extends Error {}

/** Parses `--flag value` and `--flag=value` forms; every problem is a UsageError naming it. */
export function parseExportArgs(args: string[]): ExportArgs {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (!['format', 'out', 'dtype'].includes(name)) throw new UsageError(`unknown option --${name}`);
    const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined || value === '' || (eq < 0 && value.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
    if (flags.has(name)) throw new UsageError(`--${name} given twice`);
    flags.set(name, value);
  }
  if (positional.length !== 1) throw new UsageError(positional.length === 0 ? 'missing <model-dir>' : `unexpected argument "${positional[1]}"`);
  const format = flags.get('format');
  if (format === undefined) throw new UsageError('missing --format (supported: gguf)');
  if (format !== 'gguf') throw new UsageError(`unsupported --format "${format}" (supported: gguf)`);
  const out = flags.get('out');
  if (out === undefined) throw new UsageError('missing --out FILE');
  const dtype = flags.get('dtype') ?? 'f16';
  if (!GGUF_DTYPES.includes(dtype as GgufDtype)) throw new UsageError(`unsupported --dtype "${dtype}" (supported: ${GGUF_DTYPES.join(', ')})`);
  return { dir: positional[0]!, format, out, dtype: dtype as GgufDtype };
}

/** Runs the export; returns the process exit code (0 done, 1 failed, 2 usage). Messages go to stderr/stdout. */
export async function runExportCommand(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let parsed: ExportArgs;
  try {
    parsed = parseExportArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`kiln export: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  const out = resolve(parsed.out);
  if (!existsSync(dirname(out))) {
    process.stderr.write(`kiln export: output folder ${dirname(out)} does not exist\n`);
    return 1;
  }
  if (existsSync(out) && statSync(out).isDirectory()) {
    process.stderr.write(`kiln export: --out ${out} is a folder; give a file name\n`);
    return 1;
  }
  const started = Date.now();
  try {
    const r = await exportGguf(parsed.dir, out, { dtype: parsed.dtype });
    const mb = (r.bytes / 1024 / 1024).toFixed(1);
    const pad = r.paddedTokens > 0 ? `, ${r.paddedTokens} padding tokens` : '';
    process.stdout.write(`wrote ${r.path} (${r.architecture}, ${parsed.dtype}, ${r.tensorCount} tensors, ${mb} MiB${pad}) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    return 0;
  } catch (err) {
    // model-file problems name the file; anything else is reported with its message
    const msg = err instanceof ModelFileError ? err.message : `export failed: ${(err as Error).message}`;
    process.stderr.write(`kiln export: ${msg}\n`);
    return 1;
  }
}
