// `kiln model download <owner/name>`: a Hugging Face checkpoint into Kiln's storage (resumable and
// verified), then the same check "Select Model…" makes. Progress goes to stderr, the result to stdout.
import { describeProgress, type DownloadProgress, describeVerification, downloadModel, type DownloadResult } from '../model/download/download-model';
import { repoIdProblem, resolveHubOptions } from '../model/download/hub';
import { PRESET_LATENCY } from '../model/download/preset-latency';
import { describePreset, findPreset, MODEL_PRESETS, presetSizes } from '../model/download/presets';
import { defaultCacheDir } from '../model/graph/build-cache';
import { validateModelFolder } from '../lsp/validate-model';
import type { ValidateModelResult } from '../protocol';
import { parseCommandArgs, UsageError, withUsage } from './cli-args';

const USAGE = `usage: kiln model download <owner/name | preset> [--revision R] [--dest DIR] [--base-url URL] [--token T] [--json]
       kiln model download --list-presets [--json]
  the model goes to DIR/models/<owner>--<name> (DIR defaults to ~/.cache/kiln); the Hub URL defaults to
  $KILN_HUB_URL, $HF_ENDPOINT or https://huggingface.co, the token to $HF_TOKEN; run it again to resume.
  A preset id (see --list-presets) stands for its repository`;

function parse(args: string[]) {
  const { values, positionals } = parseCommandArgs(args, {
    revision: { type: 'string' },
    dest: { type: 'string' },
    'base-url': { type: 'string' },
    token: { type: 'string' },
    json: { type: 'boolean' },
    'list-presets': { type: 'boolean' },
  });
  if (values['list-presets']) {
    if (positionals.length > 0) throw new UsageError('--list-presets takes no model id');
    return { listPresets: true as const, json: values.json === true };
  }
  if (positionals.length !== 1) throw new UsageError('expected one Hub model id (owner/name) or a preset id (--list-presets)');
  const preset = findPreset(positionals[0]!);
  if (preset?.unsupported) throw new Error(`${preset.repo}: ${preset.unsupported}`);
  const repo = preset?.repo ?? positionals[0]!;
  const problem = repoIdProblem(repo);
  if (problem) throw new UsageError(problem);
  try {
    resolveHubOptions({ baseUrl: values['base-url'] });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    listPresets: false as const,
    repo,
    revision: values.revision,
    storageDir: values.dest ?? defaultCacheDir(),
    baseUrl: values['base-url'],
    token: values.token,
    json: values.json === true,
  };
}

/** Progress on stderr: one rewritten line on a terminal, a line per finished file otherwise. */
function progressPrinter(): { onProgress: (p: DownloadProgress) => void; end: () => void } {
  const tty = process.stderr.isTTY === true;
  const finished = new Set<string>();
  let open = false;
  return {
    onProgress: (p) => {
      if (tty) {
        process.stderr.write(`\r${describeProgress(p)}\x1b[K`);
        open = true;
      } else if (p.phase === 'listing' || (p.file && p.fileSize !== undefined && p.fileBytes >= p.fileSize && !finished.has(p.file))) {
        if (p.file) finished.add(p.file);
        process.stderr.write(`${describeProgress(p)}\n`);
      }
    },
    end: () => {
      if (open) process.stderr.write('\n');
      open = false;
    },
  };
}

function summary(r: DownloadResult, v: ValidateModelResult): string {
  const m = r.manifest;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const bytes = m.files.reduce((n, f) => n + f.size, 0);
  const how = r.alreadyComplete ? 'already complete' : `${mib(r.fetchedBytes)} fetched${r.resumedBytes ? `, ${mib(r.resumedBytes)} resumed` : ''}`;
  return [
    `model     ${m.repo}@${m.revision}${m.commit ? ` (${m.commit.slice(0, 12)})` : ''}`,
    `folder    ${r.dir}`,
    `files     ${m.files.length}, ${mib(bytes)} (${how}), ${describeVerification(m.files)}`,
    `kiln      ${v.ok ? v.message : `cannot use it: ${v.message}`}`,
  ].join('\n');
}

/** The presets with their sizes, memory and measured latency. */
function listPresets(json: boolean, out: (text: string) => void): number {
  if (json) {
    out(
      JSON.stringify(
        MODEL_PRESETS.map((p) => ({ ...p, sizes: presetSizes(p), latency: PRESET_LATENCY[p.id] ?? null })),
        null,
        2,
      ),
    );
    return 0;
  }
  for (const p of MODEL_PRESETS) {
    const d = describePreset(p);
    out(`${p.id.padEnd(26)} ${d.label}\n  ${d.description}\n  ${d.detail}`);
  }
  out(`latency: ${PRESET_LATENCY[MODEL_PRESETS[0]!.id]?.source ?? 'not measured'}`);
  return 0;
}

export async function runModelDownload(args: string[], out: (text: string) => void): Promise<number> {
  const parsed = withUsage(USAGE, () => parse(args));
  if (parsed.listPresets) return listPresets(parsed.json, out);
  const { listPresets: _, ...o } = parsed;
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  const printer = progressPrinter();
  let result: DownloadResult;
  try {
    result = await downloadModel({
      ...o,
      signal: abort.signal,
      onProgress: printer.onProgress,
      onRetry: (err, attempt, delayMs) => {
        printer.end();
        process.stderr.write(`${err.message}; retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s\n`);
      },
    });
  } catch (err) {
    if (abort.signal.aborted) throw new Error('cancelled; run the same command again to resume');
    throw err;
  } finally {
    printer.end();
    process.removeListener('SIGINT', onSigint);
  }
  const validation = validateModelFolder(result.dir);
  if (o.json) out(JSON.stringify({ ...result, validation }, null, 2));
  else out(summary(result, validation));
  if (!validation.ok) process.stderr.write(`kiln model download: downloaded to ${result.dir}, but Kiln cannot use it: ${validation.message}\n`);
  return validation.ok ? 0 : 1;
}
