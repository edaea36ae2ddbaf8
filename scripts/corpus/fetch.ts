// Gets each source's files onto disk: npm tarballs (cached, checked) extracted with the system tar,
// and the file lists of pinned Debian packages from dpkg.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DebianSource, NpmSource } from './sources';

/** npm's tarball file name: '@scope/name@1.2.3' packs to 'scope-name-1.2.3.tgz'. */
export function tarballName(p: NpmSource): string {
  return `${p.name.replace(/^@/, '').replace('/', '-')}-${p.version}.tgz`;
}

/** The file's sha512 as an SRI string, the form npm records as `integrity`. */
export function sriSha512(file: string): string {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/** Packs every listed package whose tarball is not cached yet, in one npm call. */
export function fetchTarballs(packages: readonly NpmSource[], dir: string, log: (line: string) => void): void {
  mkdirSync(dir, { recursive: true });
  const missing = packages.filter((p) => !existsSync(join(dir, tarballName(p))));
  if (missing.length === 0) return;
  log(`npm pack: ${missing.length} package(s)`);
  const specs = missing.map((p) => `${p.name}@${p.version}`);
  // Run from the cache folder so the project's own npm config plays no part.
  execFileSync('npm', ['pack', ...specs, '--pack-destination', dir, '--ignore-scripts', '--loglevel', 'warn'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 << 20,
  });
  for (const p of missing) if (!existsSync(join(dir, tarballName(p)))) throw new Error(`npm pack did not produce ${tarballName(p)}`);
}

/** The `license` field of a package.json (a string, or the old `{ type }` object). */
function licenseField(pkg: Record<string, unknown>): unknown {
  const l = pkg.license;
  return typeof l === 'object' && l !== null ? (l as { type?: unknown }).type : l;
}

/**
 * Extracts a checked tarball into `dest` (emptied first) and returns the package's root folder.
 * Checks the integrity when pinned, and that the package.json names the listed package, version
 * and license.
 */
export function extractPackage(p: NpmSource, tarball: string, dest: string): { root: string; integrity: string } {
  const integrity = sriSha512(tarball);
  if (p.integrity !== undefined && p.integrity !== integrity) throw new Error(`${p.name}@${p.version}: tarball integrity ${integrity} is not the pinned ${p.integrity}`);
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', dest, '--no-same-owner', '--no-same-permissions'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const top = readdirSync(dest, { withFileTypes: true }).filter((e) => e.isDirectory());
  if (top.length !== 1) throw new Error(`${tarball}: expected one top-level folder, found ${top.length}`);
  const root = join(dest, top[0]!.name);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  const license = licenseField(pkg);
  if (pkg.name !== p.name || pkg.version !== p.version) throw new Error(`${tarball}: package.json says ${String(pkg.name)}@${String(pkg.version)}`);
  if (license !== p.license) throw new Error(`${p.name}@${p.version}: package.json license ${JSON.stringify(license)} is not the listed ${p.license}`);
  return { root, integrity };
}

/** The installed version of a Debian package, or undefined when it is not installed. */
function installedVersion(pkg: string): string | undefined {
  try {
    const status = execFileSync('dpkg-query', ['-W', '-f=${db:Status-Status} ${Version}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const [state, version] = status.split(' ');
    return state === 'installed' ? version : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Checks every pinned Debian package before anything is read, so one run names all that are
 * missing: the error carries a single apt-get command that installs them at their pins.
 */
export function checkDebianPins(sources: readonly DebianSource[]): void {
  const missing = new Set<string>(); // a package two sources share is named once
  const different = new Set<string>();
  for (const source of sources) {
    for (const [pkg, pinned] of Object.entries(source.debianPackages)) {
      const installed = installedVersion(pkg);
      if (installed === undefined) missing.add(`${pkg}=${pinned}`);
      else if (installed !== pinned) different.add(`${pkg} is ${installed} here, the list pins ${pinned}`);
    }
  }
  const problems = [
    ...(missing.size ? [`${missing.size} pinned Debian packages are not installed; as root: apt-get install -y --no-install-recommends ${[...missing].join(' ')}`] : []),
    ...(different.size ? [`${different.size} differ from their pins (update packages.json to rebuild with them): ${[...different].join('; ')}`] : []),
  ];
  if (problems.length) throw new Error(problems.join('\n'));
}

/**
 * The paths (relative to `source.root`, sorted) of the files dpkg lists for the source's Debian
 * packages; checkDebianPins has checked they are installed at their pinned versions.
 */
export function debianFiles(source: DebianSource): string[] {
  const paths = new Set<string>();
  for (const pkg of Object.keys(source.debianPackages)) {
    const listed = execFileSync('dpkg-query', ['-L', pkg], { encoding: 'utf8', maxBuffer: 64 << 20 });
    for (const line of listed.split('\n')) if (line.startsWith(`${source.root}/`)) paths.add(line.slice(source.root.length + 1));
  }
  return [...paths].sort();
}
