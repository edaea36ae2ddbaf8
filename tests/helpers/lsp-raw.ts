// The built server (`node dist/cli.js serve --stdio`) driven byte by byte, for tests of what a
// well-behaved client never sends: broken frames, requests before initialize, and messages that
// must arrive in the same chunk. What the server writes is parsed with vscode-jsonrpc's reader.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type Message, type NotificationMessage, type ResponseMessage, StreamMessageReader } from 'vscode-languageserver-protocol/node';
import { CLI } from './built-cli';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A JSON-RPC message framed as LSP sends it. */
export function frame(message: object): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

export class RawServer {
  readonly received: Message[] = [];
  stderr = '';
  exit: Exit | undefined;
  readonly exited: Promise<Exit>;
  private waiters: (() => void)[] = [];
  private nextId = 1;

  constructor(readonly child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, KILN_DEBUG: '' } })) {
    child.stdin!.on('error', () => {}); // writing to a server that has exited is part of some tests
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    new StreamMessageReader(child.stdout!).listen((m) => {
      this.received.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
    this.exited = (once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>).then(([code, signal]) => (this.exit = { code, signal }));
  }

  /** Writes raw bytes (all of them in one write, so the server reads them together). */
  write(...parts: (Buffer | string)[]): void {
    this.child.stdin!.write(Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p))));
  }

  /** A request message with a fresh id (framed and written by `send`). */
  request(method: string, params?: unknown): { jsonrpc: '2.0'; id: number; method: string; params?: unknown } {
    return { jsonrpc: '2.0', id: this.nextId++, method, ...(params === undefined ? {} : { params }) };
  }

  notification(method: string, params?: unknown): { jsonrpc: '2.0'; method: string; params?: unknown } {
    return { jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) };
  }

  /** Frames and writes messages in one chunk. */
  send(...messages: object[]): void {
    this.write(...messages.map(frame));
  }

  /** The first message (already received or still to come) that matches; rejects after `ms`. */
  async waitFor<T extends Message>(match: (m: Message) => boolean, what: string, ms = 15_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.received.find(match);
      if (found) return found as T;
      const left = deadline - Date.now();
      if (left <= 0 || this.exit) throw new Error(`no ${what} within ${ms} ms${this.exit ? ` (the server exited with ${this.exit.code})` : ''}; stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  response(id: number, ms?: number): Promise<ResponseMessage> {
    return this.waitFor<ResponseMessage>((m) => (m as ResponseMessage).id === id && !('method' in m), `response ${id}`, ms);
  }

  /** Sends a request and waits for its response. */
  async call(method: string, params?: unknown): Promise<ResponseMessage> {
    const request = this.request(method, params);
    this.send(request);
    return this.response(request.id);
  }

  notifications(method: string): NotificationMessage[] {
    return this.received.filter((m): m is NotificationMessage => (m as NotificationMessage).method === method && !('id' in m));
  }

  /** Resolves with the exit, or rejects when the process is still running after `ms` (a hang). */
  async exitsWithin(ms: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the server was still running after ${ms} ms; stderr: ${this.stderr}`)), ms)));
    return Promise.race([this.exited, hang]).finally(() => clearTimeout(timer));
  }

  /** Teardown: never leaves the process behind. */
  async dispose(): Promise<void> {
    if (this.exit) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}
