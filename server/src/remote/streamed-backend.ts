// What the three backends share: post the API's body, read its stream of events, hand the text so
// far to the caller after each piece (which may stop it), and keep the server's own timings.
import type { ServerReportedTimings } from '../telemetry/timings';
import { postStream, RemoteError, type StreamLimits } from './http-stream';
import type { InfillRequest, InfillResult, OnText, RemoteKind, TextBackend } from './text-backend';

/** What one stream line meant. */
export interface StreamPiece {
  text?: string;
  /** The server says the completion is over. */
  done?: boolean;
  server?: ServerReportedTimings;
}

export interface BackendEndpoint {
  /** Where requests go (the configured URL plus the API's path). */
  url: URL;
  /** Shown in status lines (never with the key). */
  label: string;
  apiKey?: string;
  limits?: Partial<StreamLimits>;
}

/** One API's request body and stream format; the rest is StreamedBackend's. */
export interface BackendProtocol {
  readonly kind: RemoteKind;
  body(request: InfillRequest): Record<string, unknown>;
  /** Parses one line of the streamed body; throws a RemoteError for a malformed or error event. */
  parse(line: string): StreamPiece | undefined;
}

export class StreamedBackend implements TextBackend {
  readonly kind: RemoteKind;
  readonly label: string;

  constructor(
    private readonly protocol: BackendProtocol,
    private readonly endpoint: BackendEndpoint,
  ) {
    this.kind = protocol.kind;
    this.label = endpoint.label;
  }

  async complete(request: InfillRequest, options: { signal: AbortSignal; onText?: OnText }): Promise<InfillResult> {
    let text = '';
    let pieces = 0;
    let done = false;
    let server: ServerReportedTimings | undefined;
    const headers: Record<string, string> = this.endpoint.apiKey ? { authorization: `Bearer ${this.endpoint.apiKey}` } : {};
    const outcome = await postStream({
      url: this.endpoint.url,
      body: this.protocol.body(request),
      headers,
      signal: options.signal,
      limits: this.endpoint.limits,
      onLine: (line) => {
        if (done) return false; // anything after the end is not read
        const piece = this.protocol.parse(line);
        if (!piece) return true;
        if (piece.server) server = { ...server, ...piece.server };
        if (piece.text) {
          text += piece.text;
          pieces++;
          if (options.onText && !options.onText(text)) return false;
        }
        if (piece.done) done = true;
        return !done;
      },
    });
    if (!done && !outcome.stopped) throw new RemoteError('closed the stream before the completion ended', 'protocol');
    return { text, end: outcome.stopped && !done ? 'stopped' : 'done', requestMs: outcome.ms, firstPieceMs: outcome.firstLineMs, pieces, ...(server ? { server } : {}) };
  }
}

/** A field check for untrusted stream events: throws a RemoteError naming the field. */
export function expectString(event: Record<string, unknown>, field: string, where: string): string {
  const v = event[field];
  if (typeof v !== 'string') throw new RemoteError(`sent a ${where} event whose "${field}" is not a string`, 'protocol');
  return v;
}
