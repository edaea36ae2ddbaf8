// Resolves a program name to an absolute path through PATH's absolute entries only. Spawning a bare
// name lets the OS look in the current folder first on Windows (and an empty or relative PATH entry
// does the same everywhere), so a workspace that ships its own `git.exe` would run it.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export interface FindExecutableOptions {
  path?: string;
  pathExt?: string;
  platform?: NodeJS.Platform;
}

/** The absolute path of `name` on PATH, or undefined when no absolute PATH entry holds it. */
export function findExecutable(name: string, o: FindExecutableOptions = {}): string | undefined {
  const platform = o.platform ?? process.platform;
  const dirs = (o.path ?? process.env.PATH ?? '').split(delimiter).filter((d) => d !== '' && isAbsolute(d));
  const exts = platform === 'win32' ? (o.pathExt ?? process.env.PATHEXT ?? '.COM;.EXE;.BAT;.CMD').split(';').filter(Boolean) : [''];
  for (const dir of dirs) {
    for (const ext of exts) {
      const candidate = join(dir, name + ext);
      try {
        if (!statSync(candidate).isFile()) continue;
        if (platform !== 'win32') accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here, or not executable: the next entry
      }
    }
  }
  return undefined;
}
