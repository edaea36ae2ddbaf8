// The Hugging Face Hub's HTTP surface Kiln uses: the repository listing, file URLs, the token (sent
// to the Hub's own origin only, never to the CDN it redirects to) and errors turned into sentences.
// Node built-ins only: the CLI and the VS Code extension host share this code.
import { formatBytes } from './limits';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export interface HubOptions {
  /** e.g. `https://huggingface.co` (no trailing slash). */
  baseUrl: string;
  token?: string;
}

/** `limit`: a cap or deadline of the downloader was reached (never retried). */
export type HubErrorKind = 'usage' | 'not-found' | 'auth' | 'gated' | 'unsupported' | 'integrity' | 'transient' | 'http' | 'limit';

/** Every expected download failure: one sentence for the user, and a kind that decides retries. */
export class HubError extends Error {
  constructor(
    message: string,
    readonly kind: HubErrorKind,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'HubError';
  }
}

/** Explicit values win, then `KILN_HUB_URL` / `HF_ENDPOINT` and `HF_TOKEN`, then the public Hub. */
export function resolveHubOptions(given: { baseUrl?: string; token?: string }, env: NodeJS.ProcessEnv = process.env): HubOptions {
  const baseUrl = (given.baseUrl || env.KILN_HUB_URL || env.HF_ENDPOINT || DEFAULT_HUB_URL).replace(/\/+$/, '');
  let protocol: string;
  try {
    protocol = new URL(baseUrl).protocol;
  } catch {
    throw new HubError(`the Hub URL "${baseUrl}" is not a URL`, 'usage');
  }
  if (protocol !== 'https:' && protocol !== 'http:') throw new HubError(`the Hub URL "${baseUrl}" must be http(s)`, 'usage');
  return { baseUrl, token: given.token || env.HF_TOKEN || undefined };
}

const NAME_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;

/** Why `repo` is not a Hub model id (`owner/name`), or undefined when it is one. */
export function repoIdProblem(repo: string): string | undefined {
  const parts = repo.split('/');
  if (parts.length !== 2 || !parts.every((p) => NAME_PART.test(p) && !p.includes('--') && !p.includes('..'))) {
    return `"${repo}" is not a Hub model id of the form owner/name (letters, digits, "-", "_", ".")`;
  }
  return undefined;
}

/** One file as the Hub lists it; hashes are hex strings. */
export interface HubFile {
  path: string;
  size?: number;
  /** The content's sha256 (LFS files). */
  sha256?: string;
  /** The git blob id, sha1 of `blob <size>\0<content>` (files stored in git itself). */
  gitSha1?: string;
}

export interface RepoListing {
  /** The commit the revision points at, when the Hub says. */
  commit?: string;
  files: HubFile[];
}

/** What a request was for, so an error can name it. */
export interface Subject {
  repo: string;
  revision: string;
  file?: string;
}

const encodePath = (path: string) => path.split('/').map(encodeURIComponent).join('/');

export function listingUrl(hub: HubOptions, repo: string, revision: string): string {
  return `${hub.baseUrl}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
}

export function fileUrl(hub: HubOptions, repo: string, revision: string, path: string): string {
  return `${hub.baseUrl}/${repo}/resolve/${encodeURIComponent(revision)}/${encodePath(path)}`;
}

/** Size and sha256 of an LFS file and the commit, from the Hub's headers before any CDN redirect. */
export interface LinkedHeaders {
  size?: number;
  sha256?: string;
  commit?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX40 = /^[0-9a-f]{40}$/;

function readLinked(res: Response, into: LinkedHeaders): void {
  const etag = res.headers.get('x-linked-etag')?.replace(/^W\//, '').replace(/"/g, '');
  if (etag && HEX64.test(etag)) into.sha256 = etag;
  const size = Number(res.headers.get('x-linked-size') ?? NaN);
  if (Number.isSafeInteger(size) && size >= 0) into.size = size;
  const commit = res.headers.get('x-repo-commit');
  if (commit && HEX40.test(commit)) into.commit = commit;
}

function describe(s: Subject): string {
  const rev = HEX40.test(s.revision) ? s.revision.slice(0, 12) : s.revision;
  return s.file ? `${s.file} of ${s.repo}@${rev}` : `${s.repo}@${rev}`;
}

/** The Hub's refusal as a sentence; `X-Error-Code` tells a missing repo from a gated one. */
export function statusError(res: Response, hub: HubOptions, s: Subject): HubError {
  const code = res.headers.get('x-error-code') ?? '';
  const status = res.status;
  const tokenHint = hub.token ? 'the token given has no access to it' : 'if it is private, give a token (--token, HF_TOKEN, or "Kiln: Set Hugging Face Token…" in the editor)';
  if (code === 'GatedRepo') {
    const how = hub.token
      ? 'accept its terms on the Hub with the account the token belongs to'
      : 'accept its terms on the Hub, then give that account\'s token (--token, HF_TOKEN, or "Kiln: Set Hugging Face Token…")';
    return new HubError(`${s.repo} is a gated model: ${how} (${hub.baseUrl}/${s.repo})`, 'gated', status);
  }
  if (code === 'RevisionNotFound') return new HubError(`revision "${s.revision}" not found in ${s.repo}`, 'not-found', status);
  if (code === 'EntryNotFound') return new HubError(`${describe(s)}: file not found on ${hub.baseUrl}`, 'not-found', status);
  if (status === 404 || code === 'RepoNotFound') {
    return new HubError(`model ${s.repo} not found on ${hub.baseUrl} (${status}); check the id, or ${tokenHint}`, 'not-found', status);
  }
  if (status === 401)
    return new HubError(
      `${hub.baseUrl} refused ${describe(s)} (401): ${hub.token ? 'the token is invalid or expired' : 'it needs a token (--token, HF_TOKEN, or "Kiln: Set Hugging Face Token…")'}`,
      'auth',
      status,
    );
  if (status === 403) return new HubError(`${hub.baseUrl} refused ${describe(s)} (403): ${tokenHint}`, 'auth', status);
  const transient = status === 408 || status === 429 || status >= 500;
  return new HubError(`${describe(s)}: the server answered ${status} ${res.statusText}`.trimEnd(), transient ? 'transient' : 'http', status);
}

const MAX_REDIRECTS = 8;

/**
 * GET `url`, following redirects by hand so the token goes only to the Hub's origin and the
 * `X-Linked-*` headers of the Hub's own answer are kept. Returns 200, 206 and 416 answers; other
 * statuses throw a HubError.
 */
export async function hubGet(
  hub: HubOptions,
  url: string,
  request: { headers: Record<string, string>; signal: AbortSignal | undefined; subject: Subject },
): Promise<{ res: Response; linked: LinkedHeaders }> {
  const { headers, signal, subject: s } = request;
  const hubOrigin = new URL(hub.baseUrl).origin;
  const linked: LinkedHeaders = {};
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const sent: Record<string, string> = { 'user-agent': 'kiln', ...headers };
    if (hub.token && new URL(current).origin === hubOrigin) sent.authorization = `Bearer ${hub.token}`;
    const res = await fetch(current, { headers: sent, redirect: 'manual', signal });
    readLinked(res, linked);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      current = new URL(location, current).href;
      continue;
    }
    if (res.ok || res.status === 416) return { res, linked };
    await res.body?.cancel();
    throw statusError(res, hub, s);
  }
  throw new HubError(`${describe(s)}: more than ${MAX_REDIRECTS} redirects`, 'http');
}

/** Typed at the boundary: the listing's `sha` and `siblings` (with `blobs=true`: sizes, LFS sha256). */
export function parseListing(body: unknown, s: Subject): RepoListing {
  const o = body as { sha?: unknown; siblings?: unknown } | null;
  if (!o || typeof o !== 'object' || !Array.isArray(o.siblings)) throw new HubError(`${describe(s)}: the Hub's model listing has no "siblings"`, 'http');
  const files: HubFile[] = [];
  for (const raw of o.siblings as unknown[]) {
    const f = raw as { rfilename?: unknown; size?: unknown; blobId?: unknown; lfs?: { sha256?: unknown; size?: unknown } | null };
    if (!f || typeof f.rfilename !== 'string') continue;
    const lfsSha = typeof f.lfs?.sha256 === 'string' && HEX64.test(f.lfs.sha256) ? f.lfs.sha256 : undefined;
    const sizeRaw = typeof f.lfs?.size === 'number' ? f.lfs.size : f.size;
    const size = typeof sizeRaw === 'number' && Number.isSafeInteger(sizeRaw) && sizeRaw >= 0 ? sizeRaw : undefined;
    const blob = !f.lfs && size !== undefined && typeof f.blobId === 'string' && HEX40.test(f.blobId) ? f.blobId : undefined;
    files.push({ path: f.rfilename, size, sha256: lfsSha, gitSha1: blob });
  }
  const commit = typeof o.sha === 'string' && HEX40.test(o.sha) ? o.sha : undefined;
  return { commit, files };
}

/**
 * The body of `res`, refused past `maxBytes`: a Content-Length above it before reading, then the
 * bytes as they arrive (after any decompression, so a gzip bomb stops at the cap too).
 */
export async function readCappedBody(res: Response, maxBytes: number, refuse: (what: string) => HubError): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw refuse(`declares ${formatBytes(declared)} in its Content-Length, more than the ${formatBytes(maxBytes)} cap`);
  }
  if (!res.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw refuse(`is larger than ${formatBytes(maxBytes)}, the cap`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, length);
}

/** `GET {base}/api/models/{repo}/revision/{rev}?blobs=true`, at most `maxBytes` of it. */
export async function fetchListing(hub: HubOptions, repo: string, revision: string, o: { signal?: AbortSignal; maxBytes: number }): Promise<RepoListing> {
  const s: Subject = { repo, revision };
  const url = listingUrl(hub, repo, revision);
  const { res } = await hubGet(hub, url, { headers: { accept: 'application/json' }, signal: o.signal, subject: s });
  const refuse = (what: string) => new HubError(`the listing at ${url} ${what} on a repository listing (maxListingBytes); refused`, 'limit');
  const text = (await readCappedBody(res, o.maxBytes, refuse)).toString('utf8');
  try {
    return parseListing(JSON.parse(text), s);
  } catch (err) {
    if (err instanceof HubError) throw err;
    throw new HubError(`${describe(s)}: ${hub.baseUrl} did not answer with the Hub's JSON listing (is it a Hugging Face Hub?)`, 'http');
  }
}
