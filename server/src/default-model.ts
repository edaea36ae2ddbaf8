// The embedded default model: the first model folder under `models/` next to the bundle.
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** `models/` beside `dist/` (the bundle) or the repository root (tests and tsx runs). */
export function modelsRoot(): string {
  const candidates = [resolve(__dirname, '..', 'models'), resolve(__dirname, '..', '..', 'models')];
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
}

/** The embedded model's folder, or undefined when none ships (`KILN_MODEL` overrides). */
export function defaultModelPath(): string | undefined {
  if (process.env.KILN_MODEL) return process.env.KILN_MODEL;
  const root = modelsRoot();
  if (!existsSync(root)) return undefined;
  const found = readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(root, e.name, 'config.json')))
    .map((e) => join(root, e.name))
    .sort();
  return found[0];
}
