// One source's files through the fine-tune dataset's filters: path rules (vendored, secrets, lock
// files, minified or generated names), then content rules (binary, generated, minified), size and
// secret scrubbing, exactly as server/src/dataset applies them to a workspace.
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExcludedFile } from '../../server/src/dataset/exclusions';
import { classifyPath, extensionOf } from '../../server/src/dataset/path-rules';
import { readSources, type SourceText } from '../../server/src/dataset/read-sources';
import { inScope, type PathRules } from './sources';

export interface Collected {
  sources: SourceText[];
  excluded: ExcludedFile[];
  /** Paths outside the source's include/exclude rules or the language's extensions (not filtered, just not asked for). */
  outOfScope: number;
  scrubbedLines: number;
}

/**
 * Filters `paths` (relative to `root`, '/'-separated) and reads the survivors. Only regular files
 * are read: a symlink in a tarball is never followed.
 */
export async function collectSource(root: string, paths: readonly string[], rules: PathRules, extensions: ReadonlySet<string>, maxFileBytes: number): Promise<Collected> {
  const excluded: ExcludedFile[] = [];
  const candidates: { path: string; bytes: number }[] = [];
  let outOfScope = 0;
  for (const path of [...paths].sort()) {
    if (!inScope(path, rules) || !extensions.has(extensionOf(path.slice(path.lastIndexOf('/') + 1)))) {
      outOfScope++;
      continue;
    }
    const verdict = classifyPath(path);
    if (verdict !== undefined) {
      excluded.push({ path, reason: verdict.reason, ...(verdict.detail === undefined ? {} : { detail: verdict.detail }) });
      continue;
    }
    const stat = await lstat(join(root, path)).catch(() => undefined);
    if (stat === undefined || !stat.isFile()) {
      excluded.push({ path, reason: stat?.isSymbolicLink() ? 'symlink' : 'unreadable' });
      continue;
    }
    candidates.push({ path, bytes: stat.size });
  }
  const read = await readSources(root, candidates, { maxFileBytes });
  return { sources: read.sources, excluded: [...excluded, ...read.excluded], outOfScope, scrubbedLines: read.scrubbedLines };
}
