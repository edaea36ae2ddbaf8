// A stand-in for the Hugging Face Hub on 127.0.0.1: the model listing API (sizes, LFS sha256, git
// blob ids, commit), `/{repo}/resolve/{rev}/{file}` with LFS files redirected to a second "CDN"
// origin, Range requests, `X-Error-Code` refusals, tokens, and switches that inject faults,
// including hostile ones (endless and gzip-bomb listings, trickled and endless files). Every endless
// body stops at a hard bound or when the client goes away, so a test that fails still ends.
import { createHash } from 'node:crypto';
import { createGzip } from 'node:zlib';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';

export interface HubRepo {
  /** Repository-relative path → content. */
  files: Map<string, Buffer>;
  /** Requests without `Authorization: Bearer <token>` are refused as the Hub refuses private repos. */
  token?: string;
}

export interface HubFaults {
  /** Close the socket after sending this many bytes of the file, once. */
  cutOnce?: { path: string; afterBytes: number };
  /** Serve the file with one byte flipped (the listing still advertises the true size and sha256). */
  corrupt?: string;
  /** Serve the file with 1 KiB of extra bytes after it (the listing still advertises the true size). */
  grow?: string;
  /** Answer a Range request with the whole file (200), as a server without range support does. */
  ignoreRange?: boolean;
  /** Answer this status for requests whose path ends with `path`, `times` times. */
  fail?: { path: string; status: number; times: number };
  /** The listing never ends (`endless`: plain JSON whitespace; `gzip-bomb`: a gzip stream that inflates without end), or never answers (`hang`). */
  hostileListing?: 'endless' | 'gzip-bomb' | 'hang';
  /** Changes the listing's entries before it is sent, e.g. drops sizes or hashes. */
  editListing?: (siblings: ListedSibling[]) => void;
  /** Send the file one byte every `intervalMs` (at most its own length, then the answer ends). */
  trickle?: { path: string; intervalMs: number };
  /** Serve the file as an endless chunked body without Content-Length. */
  endless?: string;
  /** Leave out `X-Linked-Size` / `X-Linked-Etag` on the Hub's redirect to the CDN. */
  noLinkedHeaders?: boolean;
}

/** One entry of the listing's `siblings`, as the Hub writes it with `blobs=true`. */
export interface ListedSibling {
  rfilename: string;
  size?: number;
  blobId?: string;
  lfs?: { sha256?: string; size?: number; pointerSize?: number };
}

/** The most any endless answer sends before it gives up on its own (bytes before compression). */
export const ENDLESS_BOUND = 64 * 2 ** 20;

export interface LoggedRequest {
  origin: 'hub' | 'cdn';
  path: string;
  range?: string;
  authorization?: string;
}

export interface HubServer {
  url: string;
  cdnUrl: string;
  requests: LoggedRequest[];
  faults: HubFaults;
  close(): Promise<void>;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const gitBlobId = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const isLfs = (path: string) => /\.(safetensors|bin)$/.test(path);

/** Every file under `dir`, keyed by its `/`-separated relative path. */
export function readFolder(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(dir, path).split('\\').join('/'), readFileSync(path));
    }
  };
  walk(dir);
  return files;
}

function commitOf(name: string, repo: HubRepo): string {
  const h = createHash('sha1').update(name);
  for (const [path, bytes] of repo.files) h.update(path).update(sha256(bytes));
  return h.digest('hex');
}

function listing(name: string, repo: HubRepo, edit?: (siblings: ListedSibling[]) => void): object {
  const siblings: ListedSibling[] = [...repo.files].map(([rfilename, bytes]) => {
    if (!isLfs(rfilename)) return { rfilename, size: bytes.length, blobId: gitBlobId(bytes) };
    const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(bytes)}\nsize ${bytes.length}\n`;
    return { rfilename, size: bytes.length, blobId: gitBlobId(Buffer.from(pointer)), lfs: { sha256: sha256(bytes), size: bytes.length, pointerSize: pointer.length } };
  });
  edit?.(siblings);
  return { _id: name, id: name, modelId: name, sha: commitOf(name, repo), private: repo.token !== undefined, gated: false, siblings };
}

/** Writes `next()` chunks with backpressure until `bound` bytes went out or the client left. */
async function pump(out: NodeJS.WritableStream & { destroyed?: boolean }, res: ServerResponse, next: () => Buffer, bound: number): Promise<void> {
  let sent = 0;
  let wake = () => {};
  const closed = () => wake();
  res.once('close', closed);
  while (sent < bound && !res.destroyed && !res.writableEnded) {
    const chunk = next();
    sent += chunk.length;
    if (!out.write(chunk))
      await new Promise<void>((done) => {
        wake = done;
        out.once('drain', done);
      });
  }
  res.removeListener('close', closed);
  if (!res.destroyed) out.end();
}

/** A listing that starts like the Hub's and then never closes its array. */
function serveHostileListing(res: ServerResponse, kind: 'endless' | 'gzip-bomb'): void {
  const head = Buffer.from('{"sha":"0000000000000000000000000000000000000000","siblings":[');
  const spaces = Buffer.alloc(2 ** 16, 0x20);
  let first = true;
  const next = () => {
    if (!first) return spaces;
    first = false;
    return head;
  };
  if (kind === 'endless') {
    res.writeHead(200, { 'content-type': 'application/json' });
    void pump(res, res, next, ENDLESS_BOUND);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
  const gzip = createGzip({ level: 9 });
  gzip.pipe(res);
  res.once('close', () => gzip.destroy());
  void pump(gzip, res, next, 16 * ENDLESS_BOUND); // ~1000:1, so ~1 MiB on the wire
}

/** One byte every `intervalMs`, stopping at the file's end or when the client leaves. */
function trickle(res: ServerResponse, body: Buffer, intervalMs: number): void {
  let at = 0;
  const timer = setInterval(() => {
    if (res.destroyed || at >= body.length) {
      clearInterval(timer);
      if (!res.destroyed) res.end();
      return;
    }
    res.write(body.subarray(at, ++at));
  }, intervalMs);
  res.once('close', () => clearInterval(timer));
}

export async function startHubServer(repos: Record<string, HubRepo>): Promise<HubServer> {
  const requests: LoggedRequest[] = [];
  const faults: HubFaults = {};
  const blobs = new Map<string, { path: string; bytes: Buffer }>();
  for (const repo of Object.values(repos)) for (const [path, bytes] of repo.files) if (isLfs(path)) blobs.set(sha256(bytes), { path, bytes });

  const refuse = (res: ServerResponse, status: number, code?: string) => {
    res.writeHead(status, { 'content-type': 'application/json', ...(code ? { 'x-error-code': code } : {}) });
    res.end(JSON.stringify({ error: code ?? 'error' }));
  };

  /** The bytes of `path`, honouring `Range: bytes=N-` and the fault switches. */
  const serveBytes = (req: IncomingMessage, res: ServerResponse, path: string, original: Buffer, headers: Record<string, string>) => {
    let bytes = original;
    if (faults.corrupt === path) {
      bytes = Buffer.from(original);
      bytes[bytes.length >> 1]! ^= 0xff;
    }
    if (faults.grow === path) bytes = Buffer.concat([original, Buffer.alloc(1024, 7)]);
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m && !faults.ignoreRange ? Number(m[1]) : 0;
    if (start >= bytes.length && start > 0) {
      res.writeHead(416, { 'content-range': `bytes */${bytes.length}` });
      return res.end();
    }
    const body = bytes.subarray(start);
    if (faults.endless === path) {
      res.writeHead(200, headers);
      const filler = Buffer.alloc(2 ** 16, 0x20);
      void pump(res, res, () => filler, ENDLESS_BOUND);
      return;
    }
    res.writeHead(m && !faults.ignoreRange ? 206 : 200, {
      ...headers,
      'accept-ranges': 'bytes',
      'content-length': String(body.length),
      ...(m && !faults.ignoreRange ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    if (faults.trickle?.path === path) return trickle(res, body, faults.trickle.intervalMs);
    const cut = faults.cutOnce;
    if (cut?.path === path && body.length > cut.afterBytes) {
      faults.cutOnce = undefined;
      res.write(body.subarray(0, cut.afterBytes), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  };

  const handleHub = (req: IncomingMessage, res: ServerResponse, cdnUrl: string) => {
    const url = new URL(req.url ?? '/', 'http://hub');
    const api = /^\/api\/models\/([^/]+\/[^/]+)(?:\/revision\/([^/]+))?$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const name = decodeURIComponent((api ?? resolve)?.[1] ?? '');
    const repo = repos[name];
    if (!repo) return refuse(res, 404, 'RepoNotFound');
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) return refuse(res, 401, 'RepoNotFound');
    const rev = decodeURIComponent((api ? api[2] : resolve?.[2]) ?? 'main');
    const commit = commitOf(name, repo);
    if (rev !== 'main' && rev !== commit) return refuse(res, 404, 'RevisionNotFound');
    if (api) {
      if (faults.hostileListing === 'hang') return; // never answered; close() drops the connection
      if (faults.hostileListing) return serveHostileListing(res, faults.hostileListing);
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(listing(name, repo, faults.editListing)));
    }
    const path = resolve![3]!.split('/').map(decodeURIComponent).join('/');
    const bytes = repo.files.get(path);
    if (!bytes) return refuse(res, 404, 'EntryNotFound');
    if (!isLfs(path)) return serveBytes(req, res, path, bytes, { etag: `"${gitBlobId(bytes)}"`, 'x-repo-commit': commit });
    const sha = sha256(bytes);
    const linked = faults.noLinkedHeaders ? {} : { 'x-linked-etag': `"${sha}"`, 'x-linked-size': String(bytes.length), etag: `"${sha}"` };
    res.writeHead(302, { location: `${cdnUrl}/cdn/${sha}?signature=x`, ...linked, 'x-repo-commit': commit });
    res.end();
  };

  const handle = (origin: 'hub' | 'cdn', cdnUrl: () => string) => (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push({ origin, path, range: req.headers.range, authorization: req.headers.authorization });
    const fail = faults.fail;
    if (fail && fail.times > 0 && path.endsWith(fail.path)) {
      fail.times--;
      return refuse(res, fail.status);
    }
    if (origin === 'hub') return handleHub(req, res, cdnUrl());
    const blob = blobs.get(/^\/cdn\/([0-9a-f]{64})$/.exec(path)?.[1] ?? '');
    if (!blob) return refuse(res, 404);
    serveBytes(req, res, blob.path, blob.bytes, { etag: `"${sha256(blob.bytes)}"` });
  };

  let cdnUrl = '';
  const listen = async (server: Server) => {
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const hub = createServer(handle('hub', () => cdnUrl));
  const cdn = createServer(handle('cdn', () => cdnUrl));
  const url = await listen(hub);
  cdnUrl = await listen(cdn);
  const close = (s: Server) =>
    new Promise<void>((done) => {
      s.closeAllConnections();
      s.close(() => done());
    });
  return { url, cdnUrl, requests, faults, close: async () => void (await Promise.all([close(hub), close(cdn)])) };
}
