// `npm run package`: the VSIX for one platform, holding the esbuild bundles, the manifest, README,
// LICENSE, the embedded model (if any) and onnxruntime-node with only that platform's native binary.
// What goes in is decided by `.vscodeignore`; this script points its binary line at the target.
//
//   node --import tsx scripts/package-vsix.ts [--target linux-x64] [--out kiln.vsix]
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createVSIX } from '@vscode/vsce';

const REPO = resolve(__dirname, '..');
const BINARY_LINE = /^!node_modules\/onnxruntime-node\/bin\/napi-v6\/[^/]+\/[^/]+\/\*\*$/m;
/** The top-level entries a VSIX draws from (`.vscodeignore` picks files among them); recipes/ (Python, for clusters) is left out on purpose. */
const SOURCES = ['package.json', 'README.md', 'LICENSE', 'dist', 'models', 'node_modules'];

/** The VS Code target (`linux-x64`, `darwin-arm64`, `win32-x64`, …) of this machine. */
export function hostTarget(): string {
  return `${process.platform}-${process.arch}`;
}

/** `.vscodeignore` with its native-binary line aimed at `target`. */
function ignoreRulesFor(target: string): string {
  const [platform, arch] = target.split('-');
  if (!platform || !arch) throw new Error(`target must look like linux-x64, got "${target}"`);
  const rules = readFileSync(join(REPO, '.vscodeignore'), 'utf8');
  if (!BINARY_LINE.test(rules)) throw new Error('.vscodeignore has no onnxruntime-node binary line to retarget');
  return rules.replace(BINARY_LINE, `!node_modules/onnxruntime-node/bin/napi-v6/${platform}/${arch}/**`);
}

/**
 * A temp folder of links to SOURCES plus the retargeted `.vscodeignore`. vsce walks every file under
 * the folder it packages before filtering; the repository's ignored caches (.kiln-dev, .kiln-cache)
 * hold tens of thousands, which made packaging take a minute.
 */
function stage(target: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-vsix-'));
  for (const entry of SOURCES) if (existsSync(join(REPO, entry))) symlinkSync(join(REPO, entry), join(dir, entry));
  writeFileSync(join(dir, '.vscodeignore'), ignoreRulesFor(target));
  return dir;
}

/** Packages the extension (from the current dist/) into `out` and returns its size in bytes. */
export async function packageVsix(out: string, target = hostTarget()): Promise<number> {
  const dir = stage(target);
  try {
    // npm lists the production dependencies through the linked node_modules; followSymlinks walks the links.
    await createVSIX({ cwd: dir, packagePath: out, target, dependencies: true, followSymlinks: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return statSync(out).size;
}

if (require.main === module) {
  const { values } = parseArgs({ options: { target: { type: 'string' }, out: { type: 'string' } } });
  const out = resolve(values.out ?? join(REPO, 'kiln.vsix'));
  packageVsix(out, values.target ?? hostTarget()).then(
    (bytes) => console.log(`${out}: ${(bytes / 2 ** 20).toFixed(1)} MiB`),
    (err: unknown) => {
      console.error((err as Error).message);
      process.exit(1);
    },
  );
}
