// Why a workspace file was left out of the fine-tuning dataset.

/**
 * Reasons, in the order a file meets the rules:
 * - path rules, decided before anything is read: ignored, vendored, secret-file, lockfile,
 *   not-source (neither a source extension nor a known source file name), and binary, minified or
 *   generated where the name alone tells (`.png`, `.min.js`, `_pb2.py`);
 * - metadata: symlink, hard-link (more than one link and not tracked by git: it may be a file from
 *   outside the workspace), unreadable (missing, not a regular file such as a FIFO or a device,
 *   outside the root, changed since the scan), oversized, empty, limit (past the scan's file, entry
 *   or byte bounds);
 * - content, after reading: binary, empty, generated, minified;
 * - duplicate (same normalized content as an earlier path).
 */
export const EXCLUSION_REASONS = [
  'ignored',
  'vendored',
  'secret-file',
  'lockfile',
  'not-source',
  'symlink',
  'hard-link',
  'unreadable',
  'oversized',
  'limit',
  'binary',
  'empty',
  'generated',
  'minified',
  'duplicate',
] as const;

export type ExclusionReason = (typeof EXCLUSION_REASONS)[number];

export interface ExcludedFile {
  /** Relative to the scanned root, '/'-separated; a folder left out whole ends with '/'. */
  path: string;
  reason: ExclusionReason;
  /** A short human-readable specific, e.g. the duplicate's original or the matched marker. */
  detail?: string;
}

/** How many entries each reason excluded (every reason present, zero included). */
export function countByReason(excluded: readonly ExcludedFile[]): Record<ExclusionReason, number> {
  const counts = Object.fromEntries(EXCLUSION_REASONS.map((r) => [r, 0])) as Record<ExclusionReason, number>;
  for (const e of excluded) counts[e.reason]++;
  return counts;
}
