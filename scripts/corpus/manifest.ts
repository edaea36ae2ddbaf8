// The corpus manifest: what went in, from where, under which license, and hashes that change
// whenever any file does. No timestamps: the same list rebuilds the same manifest.
import { createHash } from 'node:crypto';
import { countByReason, type ExcludedFile } from '../../server/src/dataset/exclusions';
import { extensionOf } from '../../server/src/dataset/path-rules';

export type Split = 'train' | 'heldout';

/** A file as written: `path` is relative to its split folder ('<source>/<path in source>'). */
export interface CorpusFile {
  source: string;
  split: Split;
  path: string;
  text: string;
}

export interface SourceInfo {
  name: string;
  version: string;
  license: string;
  origin: 'npm' | 'debian';
  /** npm: the tarball's sha512 SRI; Debian: package → version. */
  integrity?: string;
  debianPackages?: Record<string, string>;
  excluded: ExcludedFile[];
  outOfScope: number;
  scrubbedLines: number;
}

export interface FileListStats {
  files: number;
  bytes: number;
  /** sha256 of the sorted lines "path<TAB>sha256(content)". */
  sha256: string;
}

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');

export function fileListStats(files: readonly CorpusFile[]): FileListStats {
  const lines = files.map((f) => `${f.path}\t${sha256(f.text)}\n`).sort();
  const bytes = files.reduce((n, f) => n + Buffer.byteLength(f.text), 0);
  return { files: files.length, bytes, sha256: sha256(lines.join('')) };
}

const LANGUAGES: Record<string, string> = { ts: 'typescript', tsx: 'typescript', mts: 'typescript', cts: 'typescript', py: 'python', pyi: 'python' };

/** 'typescript' | 'javascript' | 'python', from the extension. */
export function languageOf(path: string): string {
  return LANGUAGES[extensionOf(path.slice(path.lastIndexOf('/') + 1))] ?? 'javascript';
}

function nonZero(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
}

function totalsBy(files: readonly CorpusFile[], key: (f: CorpusFile) => string): Record<string, { files: number; bytes: number }> {
  const out: Record<string, { files: number; bytes: number }> = {};
  for (const f of files) {
    const k = key(f);
    const t = out[k] ?? { files: 0, bytes: 0 };
    out[k] = t;
    t.files++;
    t.bytes += Buffer.byteLength(f.text);
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export function buildManifest(listSha256: string, filters: Record<string, unknown>, sources: readonly SourceInfo[], files: readonly CorpusFile[]) {
  const bySource = new Map<string, CorpusFile[]>();
  for (const f of files) {
    const list = bySource.get(f.source);
    if (list === undefined) bySource.set(f.source, [f]);
    else list.push(f);
  }
  const split = (list: readonly CorpusFile[], s: Split) => list.filter((f) => f.split === s);
  return {
    format: 'kiln-corpus-v1',
    listSha256,
    filters,
    sources: sources.map((s) => {
      const own = bySource.get(s.name) ?? [];
      return {
        name: s.name,
        version: s.version,
        license: s.license,
        origin: s.origin,
        ...(s.integrity === undefined ? {} : { integrity: s.integrity }),
        ...(s.debianPackages === undefined ? {} : { debianPackages: s.debianPackages }),
        train: fileListStats(split(own, 'train')),
        heldout: fileListStats(split(own, 'heldout')),
        excluded: nonZero(countByReason(s.excluded)),
        outOfScope: s.outOfScope,
        scrubbedLines: s.scrubbedLines,
      };
    }),
    heldOut: [...new Set(split(files, 'heldout').map((f) => f.source))],
    totals: {
      train: fileListStats(split(files, 'train')),
      heldout: fileListStats(split(files, 'heldout')),
      byLanguage: { train: totalsBy(split(files, 'train'), (f) => languageOf(f.path)), heldout: totalsBy(split(files, 'heldout'), (f) => languageOf(f.path)) },
    },
  };
}
