// A small inference server on 127.0.0.1 that speaks the three APIs Kiln's remote backends use, in
// their documented request and response shapes (schemas and sources in inference-api-schemas.ts),
// in front of a generation engine: llama.cpp itself (node-llama-cpp, greedy; llama-greedy.ts) or a
// scripted one for failure tests. It counts requests, completions and connections the client closed
// before the answer ended, and has switches for the failures a real server shows.
//
// Stream formats written here, as documented:
//   OpenAI     `data: {"id","object":"text_completion","created","model","choices":[{"text","index":0,
//              "logprobs":null,"finish_reason":null|"stop"|"length"}]}` events, then `data: [DONE]`.
//   llama.cpp  `data: {"content","stop":false,…}` events; the last has "stop": true, "stop_type" and
//              "timings" {prompt_n, prompt_ms, predicted_n, predicted_ms, cache_n, …}. No [DONE].
//   Ollama     NDJSON {"model","created_at","response","done":false}; the last "done": true with
//              "done_reason" and nanosecond durations (total_duration, prompt_eval_duration, eval_duration…).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { LLAMACPP_INFILL, OLLAMA_GENERATE, OPENAI_COMPLETIONS, type Schema, validate } from './inference-api-schemas';

/** What the server generates with. */
export interface FakeEngine {
  /** Tokens of a raw prompt, special tokens parsed (what a server does with a templated prompt). */
  tokenizePrompt(text: string): number[];
  /** llama.cpp's /infill layout: [input_extra]<FIM_PRE>prefix<FIM_SUF>suffix<FIM_MID>prompt. */
  infillTokens(prefix: string, suffix: string, extra: { filename: string; text: string }[], prompt: string): number[];
  /** Greedy pieces of text, one per token, until end of generation, `maxTokens` or the signal. */
  generate(tokens: number[], options: { maxTokens: number; signal: AbortSignal }): AsyncGenerator<string>;
}

export type FakeFault =
  | 'none'
  | 'http-500'
  /** Service unavailable (a retryable status), then the normal answer next time if the fault is cleared. */
  | 'http-503'
  /** Headers sent, then a stream event that is not JSON. */
  | 'malformed-json'
  /** Never answers (no headers). */
  | 'hang'
  /** One piece, then silence. */
  | 'stall'
  /** An endless line of text without a line break. */
  | 'huge-line'
  /** Endless short lines that carry no text (SSE comments, blank NDJSON lines): only a body cap ends them. */
  | 'endless-lines';

export interface FakeServerOptions {
  engine: FakeEngine;
  /** The model name OpenAI and Ollama requests must name. */
  modelName: string;
  /** Delay before each streamed piece (a slow server, for typing storms). */
  pieceDelayMs?: number;
}

export interface FakeServerCounts {
  requests: number;
  /** Requests answered to the end. */
  completed: number;
  /** Requests whose connection the client closed before the answer ended. */
  closedByClient: number;
  /** Requests refused with 4xx (a request shape the documentation does not allow, or an unknown model). */
  refused: number;
  /** Pieces of text written to streams, all requests together. */
  piecesSent: number;
  /** Every refusal's reason, in order. */
  refusals: string[];
  /** Every accepted body, in order, with the Authorization header it came with. */
  bodies: { path: string; body: Record<string, unknown>; authorization?: string }[];
}

export interface FakeInferenceServer {
  url: string;
  counts: FakeServerCounts;
  fault: FakeFault;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function readBody(req: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 8 * 2 ** 20) throw new Error('body too large');
  }
  return body;
}

export async function startFakeInferenceServer(options: FakeServerOptions): Promise<FakeInferenceServer> {
  const counts: FakeServerCounts = { requests: 0, completed: 0, closedByClient: 0, refused: 0, piecesSent: 0, refusals: [], bodies: [] };
  const state = { fault: 'none' as FakeFault };
  const sockets = new Set<import('node:net').Socket>();

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    counts.requests++;
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) {
        counts.closedByClient++;
        gone.abort();
      }
    });
    const route = ROUTES[req.url ?? ''];
    if (req.method !== 'POST' || !route) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no route ${req.method} ${req.url}` }));
      return;
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(await readBody(req)) as Record<string, unknown>;
    } catch {
      return refuse(res, route, 400, 'the body is not JSON');
    }
    const problem = validate(body, route.schema) ?? route.extraCheck?.(body);
    if (problem) return refuse(res, route, 400, problem);
    if (route.needsModel && body.model !== options.modelName) return refuse(res, route, 404, route.unknownModel(String(body.model)));
    counts.bodies.push({ path: req.url!, body, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    if (await injectFault(res, route)) return;
    const started = performance.now();
    const tokens = route.promptTokens(body, options.engine);
    const maxTokens = route.maxTokens(body);
    const stream = body.stream !== false;
    res.writeHead(200, { 'content-type': stream ? route.streamType : 'application/json' });
    let text = '';
    let n = 0;
    let promptMs = 0;
    let stopReason: 'eos' | 'limit' = 'eos';
    const indent = typeof body.n_indent === 'number' ? body.n_indent : 0;
    const deadline = typeof body.t_max_predict_ms === 'number' && body.t_max_predict_ms > 0 ? performance.now() + body.t_max_predict_ms : Infinity;
    for await (const piece of options.engine.generate(tokens, { maxTokens, signal: gone.signal })) {
      if (n === 0) promptMs = performance.now() - started;
      if (options.pieceDelayMs) await sleep(options.pieceDelayMs);
      if (gone.signal.aborted) return;
      const next = text + piece;
      // llama.cpp's n_indent and t_max_predict_ms end the completion at a line start (README, /completion)
      if (endsAtIndent(next, indent) || (performance.now() > deadline && next.includes('\n'))) break;
      text = next;
      n++;
      // llama.cpp's timings_per_token: every event carries the timings so far (README, /completion options)
      const soFar =
        body.timings_per_token === true ? { promptN: tokens.length, promptMs, predictedN: n, predictedMs: performance.now() - started - promptMs, totalMs: 0 } : undefined;
      if (stream) res.write(route.piece(piece, options.modelName, soFar));
      counts.piecesSent++;
      if (n >= maxTokens) {
        stopReason = 'limit';
        break;
      }
    }
    if (gone.signal.aborted) return;
    const timings = { promptN: tokens.length, promptMs, predictedN: n, predictedMs: performance.now() - started - promptMs, totalMs: performance.now() - started };
    res.end(stream ? route.last(stopReason, timings, options.modelName) : route.whole(text, stopReason, timings, options.modelName));
    counts.completed++;
  };

  const refuse = (res: ServerResponse, route: Route, status: number, why: string) => {
    counts.refused++;
    counts.refusals.push(why);
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(route.error(status, why)));
  };

  /** The fault switch: true when the answer was a fault (or none will come). */
  const injectFault = async (res: ServerResponse, route: Route): Promise<boolean> => {
    switch (state.fault) {
      case 'none':
        return false;
      case 'http-500':
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify(route.error(500, 'the model crashed (injected)')));
        return true;
      case 'http-503':
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify(route.error(503, 'loading the model (injected)')));
        return true;
      case 'malformed-json':
        res.writeHead(200, { 'content-type': route.streamType }).end(route.streamType === 'text/event-stream' ? 'data: {"content": "x", \n\n' : '{"response": "x", \n');
        return true;
      case 'hang':
        return true; // headers never come; the client's timeout or abort ends it
      case 'stall':
        res.writeHead(200, { 'content-type': route.streamType });
        res.write(route.piece('x', 'stalled'));
        return true; // then silence
      case 'huge-line':
      case 'endless-lines': {
        res.writeHead(200, { 'content-type': route.streamType });
        const chunk = state.fault === 'huge-line' ? 'y'.repeat(64 * 1024) : (route.streamType === 'text/event-stream' ? ': keep-alive\n' : '\n').repeat(4096);
        for (let sent = 0; sent < 64 * 2 ** 20 && !res.destroyed; sent += chunk.length) {
          if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
        }
        res.end();
        return true;
      }
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
      else res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    get fault() {
      return state.fault;
    },
    set fault(f: FakeFault) {
      state.fault = f;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** llama.cpp's n_indent: a completed line less indented than asked ends the completion before it. */
function endsAtIndent(text: string, indent: number): boolean {
  if (indent <= 0) return false;
  const lines = text.split('\n');
  for (let i = 1; i < lines.length - 1; i++) {
    const line = lines[i]!;
    if (line.trim() !== '' && line.length - line.trimStart().length < indent) return true;
  }
  return false;
}

interface ServerTimes {
  promptN: number;
  promptMs: number;
  predictedN: number;
  predictedMs: number;
  totalMs: number;
}

interface Route {
  schema: Schema;
  extraCheck?: (body: Record<string, unknown>) => string | undefined;
  needsModel: boolean;
  unknownModel: (name: string) => string;
  streamType: string;
  promptTokens(body: Record<string, unknown>, engine: FakeEngine): number[];
  maxTokens(body: Record<string, unknown>): number;
  piece(text: string, model: string, timings?: ServerTimes): string;
  last(stop: 'eos' | 'limit', t: ServerTimes, model: string): string;
  whole(text: string, stop: 'eos' | 'limit', t: ServerTimes, model: string): string;
  error(status: number, message: string): unknown;
}

const sse = (event: unknown) => `data: ${JSON.stringify(event)}\n\n`;
const created = () => Math.floor(Date.now() / 1000);
const llamaTimings = (t: ServerTimes) => ({
  prompt_n: t.promptN,
  prompt_ms: t.promptMs,
  prompt_per_token_ms: t.promptMs / Math.max(1, t.promptN),
  prompt_per_second: (1000 * t.promptN) / Math.max(1e-3, t.promptMs),
  predicted_n: t.predictedN,
  predicted_ms: t.predictedMs,
  predicted_per_token_ms: t.predictedMs / Math.max(1, t.predictedN),
  predicted_per_second: (1000 * t.predictedN) / Math.max(1e-3, t.predictedMs),
  cache_n: 0,
});
const ns = (ms: number) => Math.round(ms * 1e6);

const ROUTES: Record<string, Route> = {
  '/v1/completions': {
    schema: OPENAI_COMPLETIONS,
    needsModel: true,
    unknownModel: (name) => `The model \`${name}\` does not exist.`,
    streamType: 'text/event-stream',
    promptTokens: (b, e) => e.tokenizePrompt(b.prompt as string),
    maxTokens: (b) => (typeof b.max_tokens === 'number' ? b.max_tokens : 16), // the reference's default
    piece: (text, model) => sse({ id: 'cmpl-fake', object: 'text_completion', created: created(), model, choices: [{ text, index: 0, logprobs: null, finish_reason: null }] }),
    last: (stop, _t, model) =>
      `${sse({ id: 'cmpl-fake', object: 'text_completion', created: created(), model, choices: [{ text: '', index: 0, logprobs: null, finish_reason: stop === 'eos' ? 'stop' : 'length' }] })}data: [DONE]\n\n`,
    whole: (text, stop, t, model) =>
      JSON.stringify({
        id: 'cmpl-fake',
        object: 'text_completion',
        created: created(),
        model,
        choices: [{ text, index: 0, logprobs: null, finish_reason: stop === 'eos' ? 'stop' : 'length' }],
        usage: { prompt_tokens: t.promptN, completion_tokens: t.predictedN, total_tokens: t.promptN + t.predictedN },
      }),
    error: (status, message) => ({ error: { message, type: status === 404 ? 'NotFoundError' : 'invalid_request_error', code: status } }),
  },
  '/infill': {
    schema: LLAMACPP_INFILL,
    needsModel: false, // llama-server serves the model it was started with
    unknownModel: () => '',
    streamType: 'text/event-stream',
    promptTokens: (b, e) =>
      e.infillTokens(b.input_prefix as string, b.input_suffix as string, (b.input_extra ?? []) as { filename: string; text: string }[], (b.prompt ?? '') as string),
    maxTokens: (b) => (typeof b.n_predict === 'number' && b.n_predict >= 0 ? b.n_predict : 1 << 30), // -1: no limit
    piece: (content, _model, t) => sse({ content, stop: false, id_slot: 0, tokens: [], ...(t ? { timings: llamaTimings(t) } : {}) }),
    last: (stop, t) => sse({ content: '', stop: true, id_slot: 0, stop_type: stop, tokens_cached: t.promptN + t.predictedN, timings: llamaTimings(t) }),
    whole: (content, stop, t) => JSON.stringify({ content, stop: true, id_slot: 0, stop_type: stop, tokens_cached: t.promptN + t.predictedN, timings: llamaTimings(t) }),
    error: (status, message) => ({ error: { code: status, message, type: 'invalid_request_error' } }),
  },
  '/api/generate': {
    schema: OLLAMA_GENERATE,
    // raw disables the template, which is what places `suffix`: a client sending both loses the suffix
    extraCheck: (b) => (b.raw === true && b.suffix !== undefined ? '"suffix" has no effect with "raw": true' : undefined),
    needsModel: true,
    unknownModel: (name) => `model "${name}" not found, try pulling it first`,
    streamType: 'application/x-ndjson',
    promptTokens: (b, e) => {
      if (b.raw !== true) throw new Error('the fake Ollama has no model template: only raw prompts');
      return e.tokenizePrompt((b.prompt ?? '') as string);
    },
    maxTokens: (b) => {
      const n = (b.options as { num_predict?: unknown } | undefined)?.num_predict;
      return typeof n === 'number' && n >= 0 ? n : 1 << 30;
    },
    piece: (response, model) => `${JSON.stringify({ model, created_at: new Date().toISOString(), response, done: false })}\n`,
    last: (stop, t, model) =>
      `${JSON.stringify({
        model,
        created_at: new Date().toISOString(),
        response: '',
        done: true,
        done_reason: stop === 'eos' ? 'stop' : 'length',
        total_duration: ns(t.totalMs),
        load_duration: 0,
        prompt_eval_count: t.promptN,
        prompt_eval_duration: ns(t.promptMs),
        eval_count: t.predictedN,
        eval_duration: ns(t.predictedMs),
      })}\n`,
    whole: (response, stop, t, model) =>
      JSON.stringify({
        model,
        created_at: new Date().toISOString(),
        response,
        done: true,
        done_reason: stop === 'eos' ? 'stop' : 'length',
        total_duration: ns(t.totalMs),
        prompt_eval_count: t.promptN,
        prompt_eval_duration: ns(t.promptMs),
        eval_count: t.predictedN,
        eval_duration: ns(t.predictedMs),
      }),
    error: (_status, message) => ({ error: message }),
  },
};

/** A generation engine that answers every prompt with the same pieces (failure and protocol tests). */
export function scriptedEngine(pieces: readonly string[]): FakeEngine {
  return {
    tokenizePrompt: (text) => [text.length],
    infillTokens: (prefix, suffix) => [prefix.length, suffix.length],
    async *generate(_tokens, { maxTokens, signal }) {
      for (const p of pieces.slice(0, maxTokens)) {
        if (signal.aborted) return;
        yield p;
      }
    },
  };
}
