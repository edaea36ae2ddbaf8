// Hold-out of whole files for validation, decided by a hash of the path alone: stable across runs,
// seeds and edits to other files, so "before" and "after" evaluations see the same files.
import { createHash } from 'node:crypto';

export interface SplitResult<T> {
  train: T[];
  validation: T[];
}

/** A path's position in [0, 1), uniform over paths. */
export function pathFraction(path: string, salt = 'kiln-holdout'): number {
  const digest = createHash('sha256').update(`${salt}\0${path}`).digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * Files whose path hashes below `fraction` go to validation. With two or more files, validation
 * gets at least one (the lowest hash) and training keeps at least one (the highest); order is kept.
 */
export function splitByPath<T extends { path: string }>(files: readonly T[], fraction = 0.1, salt?: string): SplitResult<T> {
  if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`validation fraction must be in [0, 1], got ${fraction}`);
  const keyed = files.map((file) => ({ file, u: pathFraction(file.path, salt) }));
  const held = new Set(keyed.filter((k) => k.u < fraction).map((k) => k.file));
  if (files.length >= 2 && fraction > 0) {
    const byHash = [...keyed].sort((x, y) => x.u - y.u);
    if (held.size === 0) held.add(byHash[0]!.file);
    if (held.size === files.length) held.delete(byHash[byHash.length - 1]!.file);
  }
  return { train: files.filter((f) => !held.has(f)), validation: files.filter((f) => held.has(f)) };
}
