// The pinned list of corpus sources (scripts/corpus/packages.json), parsed and checked at the boundary.
import { readFileSync } from 'node:fs';

/** Licenses the corpus accepts: permissive ones whose code may train a model that ships. */
export const ALLOWED_LICENSES: ReadonlySet<string> = new Set(['MIT', 'Apache-2.0', 'BSD-2-Clause', 'BSD-3-Clause', 'ISC', '0BSD', 'PSF-2.0']);

/** Path rules relative to a source's root: 'src/' is a prefix, '*.cjs' a suffix. */
export interface PathRules {
  /** Only paths matching one of these (default: everything). */
  include?: string[];
  /** Paths matching one of these are left out. */
  exclude?: string[];
}

export interface NpmSource extends PathRules {
  name: string;
  version: string;
  license: string;
  /** The tarball's sha512 SRI string; checked when present. */
  integrity?: string;
  /** The whole package goes to the held-out evaluation set. */
  heldOut?: boolean;
}

export interface DebianSource extends PathRules {
  /** A name for the source in the corpus (its folder). */
  name: string;
  /** Debian packages whose files (per dpkg) make up the source, each at the pinned version. */
  debianPackages: Record<string, string>;
  license: string;
  /** The installed folder the files live under. */
  root: string;
  /** Path rules (relative to root) that go to the held-out set instead of training. */
  heldOut: string[];
}

export interface CorpusList {
  /** Per-language file extensions (lower case, no dot). */
  extensions: { npm: string[]; debian: string[] };
  /** Larger files are 'oversized', as in the fine-tune dataset. */
  maxFileBytes: number;
  npm: NpmSource[];
  debian: DebianSource[];
}

/** Whether `path` matches a rule: a '*'-led rule matches the end, any other the start. */
export function matchesRule(path: string, rule: string): boolean {
  return rule.startsWith('*') ? path.endsWith(rule.slice(1)) : path.startsWith(rule);
}

export function inScope(path: string, rules: PathRules): boolean {
  if (rules.include !== undefined && !rules.include.some((r) => matchesRule(path, r))) return false;
  return !(rules.exclude ?? []).some((r) => matchesRule(path, r));
}

/** The folder a source is written to: '@scope/name' becomes 'scope__name'. */
export function sourceFolder(name: string): string {
  return name.replace(/^@/, '').replace('/', '__');
}

function fail(message: string): never {
  throw new Error(`packages.json: ${message}`);
}

function checkLicense(who: string, license: unknown): void {
  if (typeof license !== 'string' || !ALLOWED_LICENSES.has(license)) fail(`${who}: license ${JSON.stringify(license)} is not one of ${[...ALLOWED_LICENSES].join(', ')}`);
}

export function loadCorpusList(file: string): CorpusList {
  const list = JSON.parse(readFileSync(file, 'utf8')) as CorpusList;
  if (!Array.isArray(list.npm) || !Array.isArray(list.debian)) fail('needs "npm" and "debian" lists');
  if (!Number.isInteger(list.maxFileBytes) || list.maxFileBytes <= 0) fail('"maxFileBytes" must be a positive integer');
  const names = new Set<string>();
  for (const p of [...list.npm, ...list.debian]) {
    if (typeof p.name !== 'string' || names.has(p.name)) fail(`missing or repeated name ${JSON.stringify(p.name)}`);
    names.add(p.name);
    checkLicense(p.name, p.license);
  }
  for (const p of list.npm) if (!/^\d+\.\d+\.\d+$/.test(p.version)) fail(`${p.name}: version ${JSON.stringify(p.version)} is not pinned (x.y.z)`);
  return list;
}
