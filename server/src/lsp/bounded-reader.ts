// Reads `Content-Length`-framed JSON-RPC messages from a byte stream (stdio, a socket or a pipe),
// with bounds. vscode-jsonrpc's own reader buffers any announced length (3e9 included) and, after a
// bad frame, reports an error but keeps reading out of step, so the server lives on and never answers
// again. Here the first framing error is fatal to the reader: it reports once and stops, and the
// server exits so that the client restarts it.
import type { Readable } from 'node:stream';
import { AbstractMessageReader, type DataCallback, Disposable, type Message } from 'vscode-languageserver/node';

export interface BoundedReaderLimits {
  /** Largest body accepted; a larger Content-Length is refused before any of it is buffered. */
  maxContentBytes: number;
  /** Largest header block (all header lines together). */
  maxHeaderBytes: number;
  /** How long a started message may stay incomplete before it counts as a framing error. */
  incompleteMessageMs: number;
}

export const MIB = 2 ** 20;

export const DEFAULT_READER_LIMITS: BoundedReaderLimits = {
  maxContentBytes: 64 * MIB,
  maxHeaderBytes: 8 * 1024,
  // vscode-jsonrpc warns about a partial message after this long; on a local pipe it means a wrong length.
  incompleteMessageMs: 10_000,
};

/** Bytes that are not a well-formed message: the stream cannot be resynchronised after one. */
export class FramingError extends Error {
  override name = 'FramingError';
}

const HEADER_END = Buffer.from('\r\n\r\n', 'ascii');
const DECIMAL = /^[0-9]+$/;
const HEADER_NAME = /^[a-z0-9-]+$/; // an HTTP token, as LSP's header part follows HTTP's

/** Body length from a header block (without its final blank line); throws a FramingError. */
export function parseHeaders(block: string, maxContentBytes: number): number {
  let length: number | undefined;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).toLowerCase() : '';
    if (!HEADER_NAME.test(name)) throw new FramingError(`malformed header line ${JSON.stringify(line.slice(0, 80))} (expected "Name: value")`);
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') {
      if (length !== undefined) throw new FramingError('a message has two Content-Length headers');
      if (!DECIMAL.test(value)) throw new FramingError(`Content-Length must be a byte count, got ${JSON.stringify(value.slice(0, 40))}`);
      const bytes = Number(value);
      if (bytes > maxContentBytes) throw new FramingError(`Content-Length ${value} is over the limit of ${formatBytes(maxContentBytes)}`);
      length = bytes;
    } else if (name === 'content-type') {
      const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(value)?.[1]?.toLowerCase();
      // LSP allows only UTF-8; "utf8" is accepted for old clients, as the specification says.
      if (charset && charset !== 'utf-8' && charset !== 'utf8') throw new FramingError(`Content-Type charset ${charset} is not supported (only utf-8)`);
    }
  }
  if (length === undefined) throw new FramingError('a message header has no Content-Length');
  return length;
}

function formatBytes(bytes: number): string {
  return bytes % MIB === 0 ? `${bytes / MIB} MiB` : `${bytes} bytes`;
}

/** One JSON-RPC message from a complete body; throws a FramingError when it is not a JSON object. */
export function parseBody(body: Buffer): Message {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new FramingError(`the ${body.length}-byte body is not JSON (${(err as Error).message}); the Content-Length may be wrong`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FramingError(`a message must be a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)?.slice(0, 40)}`);
  }
  return value as Message;
}

export class BoundedMessageReader extends AbstractMessageReader {
  private readonly limits: BoundedReaderLimits;
  /** Bytes received and not yet part of a delivered message, while reading a header. */
  private pending: Buffer = Buffer.alloc(0);
  /** Chunks of the body being read, and their total size. */
  private bodyChunks: Buffer[] = [];
  private bodyBytes = 0;
  private bodyLength: number | undefined;
  private incompleteTimer: NodeJS.Timeout | undefined;
  private failed = false;
  private closed = false;
  private subscriptions: Disposable[] = [];

  constructor(
    private readonly readable: Readable,
    limits: Partial<BoundedReaderLimits> = {},
  ) {
    super();
    this.limits = { ...DEFAULT_READER_LIMITS, ...limits };
  }

  listen(callback: DataCallback): Disposable {
    const onData = (chunk: Buffer) => this.receive(chunk, callback);
    const onError = (error: Error) => this.fireError(error);
    const onEnd = () => this.close();
    this.readable.on('data', onData);
    this.readable.on('error', onError);
    this.readable.on('end', onEnd);
    this.readable.on('close', onEnd);
    const subscription = Disposable.create(() => {
      this.readable.off('data', onData);
      this.readable.off('error', onError);
      this.readable.off('end', onEnd);
      this.readable.off('close', onEnd);
    });
    this.subscriptions.push(subscription);
    return subscription;
  }

  override dispose(): void {
    this.stopTimer();
    for (const s of this.subscriptions.splice(0)) s.dispose();
    super.dispose();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopTimer();
    this.fireClose();
  }

  private receive(chunk: Buffer, callback: DataCallback): void {
    if (this.failed) return;
    try {
      this.consume(chunk, callback);
    } catch (err) {
      this.fail(err instanceof FramingError ? err : new FramingError((err as Error).message));
    }
  }

  /** Delivers every complete message in the bytes received so far. */
  private consume(chunk: Buffer, callback: DataCallback): void {
    if (this.bodyLength === undefined) this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    else this.addBodyChunk(chunk);
    for (;;) {
      if (this.bodyLength === undefined && !this.readHeader()) break;
      const body = this.takeBody();
      if (!body) break;
      this.stopTimer(); // a whole message arrived: the stream is in step
      callback(parseBody(body));
      if (this.failed) return;
    }
    if (this.pending.length > 0 || this.bodyLength !== undefined) this.startTimer();
  }

  /** Parses a complete header block out of `pending`; false when it has not all arrived yet. */
  private readHeader(): boolean {
    const end = this.pending.indexOf(HEADER_END);
    if (end < 0) {
      if (this.pending.length > this.limits.maxHeaderBytes) {
        throw new FramingError(`no message header end within ${this.limits.maxHeaderBytes} bytes (is the Content-Length header missing?)`);
      }
      return false;
    }
    if (end > this.limits.maxHeaderBytes) throw new FramingError(`a message header is over ${this.limits.maxHeaderBytes} bytes`);
    this.bodyLength = parseHeaders(this.pending.subarray(0, end).toString('latin1'), this.limits.maxContentBytes);
    const rest = this.pending.subarray(end + HEADER_END.length);
    this.pending = Buffer.alloc(0);
    this.bodyChunks = [];
    this.bodyBytes = 0;
    this.addBodyChunk(rest);
    return true;
  }

  private addBodyChunk(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.bodyChunks.push(chunk);
    this.bodyBytes += chunk.length;
  }

  /** The body once all of it is here (the bytes after it go back to `pending`). */
  private takeBody(): Buffer | undefined {
    const length = this.bodyLength!;
    if (this.bodyBytes < length) return undefined;
    const all = this.bodyChunks.length === 1 ? this.bodyChunks[0]! : Buffer.concat(this.bodyChunks, this.bodyBytes);
    this.bodyChunks = [];
    this.bodyBytes = 0;
    this.bodyLength = undefined;
    this.pending = all.subarray(length);
    return all.subarray(0, length);
  }

  private startTimer(): void {
    if (this.incompleteTimer) return;
    this.incompleteTimer = setTimeout(() => {
      this.incompleteTimer = undefined;
      const received = this.bodyLength === undefined ? `${this.pending.length} bytes of a header` : `${this.bodyBytes} of ${this.bodyLength} announced bytes`;
      this.fail(new FramingError(`a message stayed incomplete for ${this.limits.incompleteMessageMs} ms (${received}); the Content-Length may be wrong`));
    }, this.limits.incompleteMessageMs);
    this.incompleteTimer.unref(); // an idle reader never keeps the process alive on its own
  }

  private stopTimer(): void {
    if (this.incompleteTimer) clearTimeout(this.incompleteTimer);
    this.incompleteTimer = undefined;
  }

  /** Reports the first framing error and stops reading: nothing after it can be trusted. */
  private fail(error: FramingError): void {
    if (this.failed) return;
    this.failed = true;
    this.stopTimer();
    this.pending = Buffer.alloc(0);
    this.bodyChunks = [];
    this.bodyBytes = 0;
    for (const s of this.subscriptions.splice(0)) s.dispose();
    this.fireError(error);
  }
}
