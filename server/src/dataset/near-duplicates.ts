// Which workspace files are copies of a given file, for context that must not leak the file being
// scored: the same content (the dedupe rule's key), the compiled or declaration twin of a source
// (x.js, x.d.ts, x.js.map beside x.ts, or under a lib/dist/build/out/esm/cjs folder where the source
// is under src/), and the same file in a vendored folder.
import { posix } from 'node:path';
import { contentKey } from './dedupe';
import { vendoredFolder } from './path-rules';

const CODE_SUFFIX = /(\.d)?\.(ts|tsx|mts|cts|js|jsx|mjs|cjs|py|pyi)(\.map)?$/i;
/** Folder names that hold the same modules as src/ in another form. */
const BUILD_DIRS = new Set(['src', 'lib', 'dist', 'build', 'out', 'esm', 'cjs', 'es', 'umd', 'types', 'typings']);

/** The module a path holds, with its code and declaration suffixes and its build folders left out: a.ts, lib/a.js and dist/a.d.ts share one. */
export function moduleStem(path: string): string {
  const inVendor = vendoredFolder(path);
  const rest = inVendor === undefined ? path : path.slice(inVendor.length);
  const parts = rest.replace(CODE_SUFFIX, '').split('/');
  return parts.filter((p, i) => i === parts.length - 1 || !BUILD_DIRS.has(p)).join('/');
}

/** Tells whether `candidate` is a near-duplicate of `scored`, given each path's text (contents compared by the dedupe key). */
export class NearDuplicates {
  private readonly keys = new Map<string, string>();

  /** Records a file's content key (call for every file that may be either side). */
  note(path: string, text: string): void {
    this.keys.set(path, contentKey(text));
  }

  isNearDuplicate(scored: string, candidate: string): boolean {
    if (candidate === scored) return true;
    const a = moduleStem(scored);
    const b = moduleStem(candidate);
    if (a === b || (posix.basename(a) === posix.basename(b) && (a.endsWith(`/${b}`) || b.endsWith(`/${a}`)))) return true;
    const ka = this.keys.get(scored);
    return ka !== undefined && ka === this.keys.get(candidate);
  }
}
