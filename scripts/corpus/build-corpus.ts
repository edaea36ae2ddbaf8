// Rebuilds Kiln's pre-training corpus from the pinned list in scripts/corpus/packages.json:
// npm packages (TypeScript/JavaScript) and Debian's Python standard library, filtered like the
// fine-tune dataset, written to .kiln-cache/corpus/{train,heldout}/<source>/… with manifest.json.
//
//   node --import tsx scripts/corpus/build-corpus.ts [--out DIR] [--list FILE]
//
// Tarballs are cached in <out>/tarballs; everything else is rebuilt from them on every run. The
// Debian sources are read from installed packages: a run that finds some missing prints the one
// apt-get command that installs them all at their pins.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { dedupeByContent } from '../../server/src/dataset/dedupe';
import { walkWorkspace } from '../../server/src/dataset/ignore-walk';
import { collectSource, type Collected } from './collect';
import { checkDebianPins, debianFiles, extractPackage, fetchTarballs, tarballName } from './fetch';
import { buildManifest, type CorpusFile, type SourceInfo, type Split } from './manifest';
import { loadCorpusList, matchesRule, sourceFolder, type CorpusList } from './sources';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const log = (line: string) => process.stderr.write(`${line}\n`);

interface Gathered {
  info: SourceInfo;
  files: CorpusFile[];
}

function gathered(info: Omit<SourceInfo, 'excluded' | 'outOfScope' | 'scrubbedLines'>, c: Collected, splitOf: (path: string) => Split): Gathered {
  const folder = sourceFolder(info.name);
  const files = c.sources.map((s) => ({ source: info.name, split: splitOf(s.path), path: `${folder}/${s.path}`, text: s.text }));
  return { info: { ...info, excluded: c.excluded, outOfScope: c.outOfScope, scrubbedLines: c.scrubbedLines }, files };
}

async function gatherNpm(list: CorpusList, out: string): Promise<Gathered[]> {
  const tarballs = join(out, 'tarballs');
  fetchTarballs(list.npm, tarballs, log);
  const extensions = new Set(list.extensions.npm);
  rmSync(join(out, 'extracted'), { recursive: true, force: true });
  const result: Gathered[] = [];
  for (const p of list.npm) {
    const { root, integrity } = extractPackage(p, join(tarballs, tarballName(p)), join(out, 'extracted', sourceFolder(p.name)));
    const walked = await walkWorkspace(root, { maxEntries: 200_000 });
    const c = await collectSource(root, walked.files, p, extensions, list.maxFileBytes);
    const split: Split = p.heldOut === true ? 'heldout' : 'train';
    result.push(gathered({ name: p.name, version: p.version, license: p.license, origin: 'npm', integrity }, c, () => split));
  }
  return result;
}

async function gatherDebian(list: CorpusList): Promise<Gathered[]> {
  const extensions = new Set(list.extensions.debian);
  const result: Gathered[] = [];
  for (const d of list.debian) {
    const c = await collectSource(d.root, debianFiles(d), d, extensions, list.maxFileBytes);
    const version = Object.values(d.debianPackages)[0] ?? '';
    const info = { name: d.name, version, license: d.license, origin: 'debian' as const, debianPackages: d.debianPackages };
    result.push(gathered(info, c, (path) => (d.heldOut.some((r) => matchesRule(path, r)) ? 'heldout' : 'train')));
  }
  return result;
}

/**
 * Drops repeated contents across the whole corpus. Held-out files come first, so a training file
 * that repeats one is the copy dropped: the evaluation set stays unseen.
 */
function dedupe(sources: readonly Gathered[]): CorpusFile[] {
  const rank = (f: CorpusFile) => `${f.split === 'heldout' ? 0 : 1}/${f.path}`;
  const all = sources.flatMap((s) => s.files).sort((a, b) => (rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0));
  const { kept, duplicates } = dedupeByContent(all);
  const byName = new Map(sources.map((s) => [s.info.name, s.info]));
  for (const d of duplicates) byName.get(d.item.source)!.excluded.push({ path: d.item.path, reason: 'duplicate', detail: d.of });
  return kept;
}

function writeCorpus(out: string, files: readonly CorpusFile[]): void {
  for (const split of ['train', 'heldout']) rmSync(join(out, split), { recursive: true, force: true });
  for (const f of files) {
    const file = join(out, f.split, f.path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, f.text);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, list: { type: 'string' } }, strict: true });
  const out = resolve(values.out ?? join(REPO, '.kiln-cache', 'corpus'));
  const listFile = resolve(values.list ?? join(REPO, 'scripts', 'corpus', 'packages.json'));
  const started = Date.now();
  const list = loadCorpusList(listFile);
  checkDebianPins(list.debian);
  const sources = [...(await gatherNpm(list, out)), ...(await gatherDebian(list))];
  const files = dedupe(sources);
  writeCorpus(out, files);
  const listSha256 = createHash('sha256').update(readFileSync(listFile)).digest('hex');
  const filters = { maxFileBytes: list.maxFileBytes, extensions: list.extensions };
  const manifest = buildManifest(
    listSha256,
    filters,
    sources.map((s) => s.info),
    files,
  );
  writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const { train, heldout } = manifest.totals;
  log(`corpus: ${train.files} train files (${mb(train.bytes)} MB), ${heldout.files} held-out files (${mb(heldout.bytes)} MB) from ${sources.length} sources`);
  log(`held out: ${manifest.heldOut.join(', ')}`);
  log(`wrote ${out} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((err: unknown) => {
  log(`build-corpus: ${(err as Error).message}`);
  process.exit(1);
});
