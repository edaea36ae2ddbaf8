// The bounds every download runs under, so a hostile or broken Hub can neither grow memory or disk
// without limit nor keep a download alive forever. Each is an option (tests set them small); the
// defaults are chosen to sit far above anything a real Hub repository needs.

export interface DownloadLimits {
  /**
   * Bytes of the repository listing after decompression (a Content-Length above it is refused
   * before reading). Default 16 MiB: the Hub lists even repositories with thousands of files in a
   * few hundred KiB, and the listing is held in memory to parse it.
   */
  maxListingBytes?: number;
  /** Each attempt at the listing ends after this long (default 60 s: it is one small JSON answer). */
  listingTimeoutMs?: number;
  /**
   * Cap on every file that is not weights (config, tokenizer, shard index), listed size or not.
   * Default 64 MiB: the largest fast tokenizers on the Hub are ~35 MB, configs and indexes a few
   * hundred KiB; the index is read into memory.
   */
  maxSmallFileBytes?: number;
  /**
   * The whole download (listing, every file, every retry and backoff) ends after this long.
   * Default 24 h: longer than fetching a 30 GB checkpoint at 400 kB/s; a run that outlives it keeps
   * its partial files and resumes when run again.
   */
  deadlineMs?: number;
  /**
   * An attempt that receives fewer bytes than this per second, averaged over a whole
   * `throughputWindowMs`, is aborted and retried (0 turns the rule off). Default 10 KiB/s: slower
   * than any link that could finish a checkpoint, while a server dribbling bytes to keep a
   * connection open (which reset the old stall timer on every byte) is caught.
   */
  minBytesPerSecond?: number;
  /** The window the throughput floor is averaged over (default 60 s, so a short pause is forgiven). */
  throughputWindowMs?: number;
}

export const DEFAULT_LIMITS: Required<DownloadLimits> = {
  maxListingBytes: 16 * 2 ** 20,
  listingTimeoutMs: 60_000,
  maxSmallFileBytes: 64 * 2 ** 20,
  deadlineMs: 24 * 3600_000,
  minBytesPerSecond: 10 * 1024,
  throughputWindowMs: 60_000,
};

/** The given limits over the defaults; a missing or non-numeric value takes the default. */
export function resolveLimits(given: DownloadLimits): Required<DownloadLimits> {
  const pick = (key: keyof DownloadLimits) => {
    const v = given[key];
    return typeof v === 'number' && !Number.isNaN(v) && v >= 0 ? v : DEFAULT_LIMITS[key];
  };
  return {
    maxListingBytes: pick('maxListingBytes'),
    listingTimeoutMs: pick('listingTimeoutMs'),
    maxSmallFileBytes: pick('maxSmallFileBytes'),
    deadlineMs: pick('deadlineMs'),
    minBytesPerSecond: pick('minBytesPerSecond'),
    throughputWindowMs: pick('throughputWindowMs'),
  };
}

/** e.g. `256.0 KiB`, `16.0 MiB`, `1.50 GiB`: how caps and sizes appear in messages. */
export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

/** e.g. `0.3 s`, `60 s`, `24 h`. */
export function formatDuration(ms: number): string {
  if (ms >= 3600_000 && ms % 3600_000 === 0) return `${ms / 3600_000} h`;
  if (ms >= 10_000) return `${Math.round(ms / 1000)} s`;
  return `${(ms / 1000).toFixed(1)} s`;
}
