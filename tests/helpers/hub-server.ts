// A stand-in for the Hugging Face Hub on 127.0.0.1: the model listing API (sizes, LFS sha256, git
// blob ids, commit), `/{repo}/resolve/{rev}/{file}` with LFS files redirected to a second "CDN"
// origin, Range requests, `X-Error-Code` refusals, tokens, and switches that inject faults.
import { createHash } from 'node:crypto';
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
}

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

function listing(name: string, repo: HubRepo): object {
  const siblings = [...repo.files].map(([rfilename, bytes]) => {
    if (!isLfs(rfilename)) return { rfilename, size: bytes.length, blobId: gitBlobId(bytes) };
    const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(bytes)}\nsize ${bytes.length}\n`;
    return { rfilename, size: bytes.length, blobId: gitBlobId(Buffer.from(pointer)), lfs: { sha256: sha256(bytes), size: bytes.length, pointerSize: pointer.length } };
  });
  return { _id: name, id: name, modelId: name, sha: commitOf(name, repo), private: repo.token !== undefined, gated: false, siblings };
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
    res.writeHead(m && !faults.ignoreRange ? 206 : 200, {
      ...headers,
      'accept-ranges': 'bytes',
      'content-length': String(body.length),
      ...(m && !faults.ignoreRange ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
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
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(listing(name, repo)));
    }
    const path = resolve![3]!.split('/').map(decodeURIComponent).join('/');
    const bytes = repo.files.get(path);
    if (!bytes) return refuse(res, 404, 'EntryNotFound');
    if (!isLfs(path)) return serveBytes(req, res, path, bytes, { etag: `"${gitBlobId(bytes)}"`, 'x-repo-commit': commit });
    const sha = sha256(bytes);
    res.writeHead(302, { location: `${cdnUrl}/cdn/${sha}?signature=x`, 'x-linked-etag': `"${sha}"`, 'x-linked-size': String(bytes.length), 'x-repo-commit': commit, etag: `"${sha}"` });
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
  const close = (s: Server) => new Promise<void>((done) => {
    s.closeAllConnections();
    s.close(() => done());
  });
  return { url, cdnUrl, requests, faults, close: async () => void (await Promise.all([close(hub), close(cdn)])) };
}
