// Opens a workspace file only when it is still the regular file the scan saw: never through a
// symlink (lstat before, O_NOFOLLOW on open, fstat after: same device and inode), never a FIFO or a
// device (opened non-blocking, refused on fstat), never a hard link git does not vouch for, and
// never more than a bound of bytes, even when the file grows after it was measured.
import { constants, type BigIntStats } from 'node:fs';
import { type FileHandle, lstat, open } from 'node:fs/promises';

/** A file's device and inode, as the scan saw it ('dev:ino'). */
export type FileIdentity = string;

export function identityOf(stat: BigIntStats): FileIdentity {
  return `${stat.dev}:${stat.ino}`;
}

export interface SafeReadOptions {
  /** More bytes than this are not read: the file is 'oversized'. */
  maxBytes: number;
  /** The identity the scan recorded; a different file at the path now is refused. */
  identity?: FileIdentity;
  /** Accept a file with more than one hard link (git tracks it); otherwise it is refused. */
  allowHardLinks?: boolean;
}

export type SafeReadRefusal = { reason: 'symlink' | 'unreadable' | 'oversized' | 'hard-link'; detail?: string };
export type SafeReadResult = { bytes: Uint8Array } | SafeReadRefusal;

// O_NOFOLLOW and O_NONBLOCK are POSIX; where a platform lacks them the lstat/fstat checks still hold.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

/** Why `stat` (of the path, or of the opened descriptor) is not a file to read, or undefined. */
function refusal(stat: BigIntStats, options: SafeReadOptions): SafeReadRefusal | undefined {
  if (stat.isSymbolicLink()) return { reason: 'symlink' };
  if (!stat.isFile()) return { reason: 'unreadable', detail: 'not a regular file' };
  if (options.identity !== undefined && identityOf(stat) !== options.identity) return { reason: 'unreadable', detail: 'changed since the scan' };
  if (stat.nlink > 1n && options.allowHardLinks !== true) return { reason: 'hard-link', detail: `${stat.nlink} links, not tracked by git` };
  if (stat.size > BigInt(options.maxBytes)) return { reason: 'oversized', detail: `${stat.size} bytes` };
  return undefined;
}

/** Reads `absPath` whole if it passes every check, else says why not; never throws for a missing or odd file. */
export async function readRegularFile(absPath: string, options: SafeReadOptions): Promise<SafeReadResult> {
  let handle: FileHandle | undefined;
  try {
    const before = await lstat(absPath, { bigint: true });
    const early = refusal(before, options);
    if (early) return early;
    handle = await open(absPath, OPEN_FLAGS);
    const after = await handle.stat({ bigint: true });
    const late = refusal(after, { ...options, identity: identityOf(before) });
    if (late) return late;
    return await readBounded(handle, options.maxBytes, Number(after.size));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { reason: 'symlink' }; // O_NOFOLLOW met a link swapped in after the lstat
    return { reason: 'unreadable', detail: code ?? 'error' };
  } finally {
    await handle?.close();
  }
}

/**
 * Up to `maxBytes` bytes; one byte more means the file grew past the bound, and it is refused. The
 * buffer starts at the measured size and grows only if the file does.
 */
async function readBounded(handle: FileHandle, maxBytes: number, measured: number): Promise<SafeReadResult> {
  const limit = maxBytes + 1;
  let buffer = Buffer.alloc(Math.min(limit, measured + 1));
  let length = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
    if (bytesRead === 0) break;
    length += bytesRead;
    if (length < buffer.length) continue;
    if (buffer.length >= limit) break;
    const grown = Buffer.alloc(Math.min(limit, buffer.length * 2));
    buffer.copy(grown, 0, 0, length);
    buffer = grown;
  }
  if (length > maxBytes) return { reason: 'oversized', detail: `more than ${maxBytes} bytes when read` };
  return { bytes: buffer.subarray(0, length) };
}
