// `kiln.backend.*`: which engine computes completions. `local` (the default) keeps everything on this
// machine; a remote kind sends the prompt window to `url`, and only because the user chose it. The
// client reads these from user/machine settings only (machine scope), so a workspace cannot redirect
// a user's code to a server of its choosing.
import { LlamaCppProtocol } from './llamacpp';
import { OllamaProtocol } from './ollama';
import { OpenAiProtocol } from './openai';
import { type BackendProtocol, StreamedBackend } from './streamed-backend';
import type { StreamLimits } from './http-stream';
import { BACKEND_KINDS, type BackendKind, type TextBackend } from './text-backend';

export interface BackendSettings {
  kind: BackendKind;
  url: string;
  /** The model name the server knows (required by OpenAI-compatible servers and Ollama). */
  model: string;
  /** When the remote backend fails, answer from the local model instead of nothing. */
  fallbackToLocal: boolean;
}

export const DEFAULT_BACKEND_SETTINGS: BackendSettings = Object.freeze({ kind: 'local', url: '', model: '', fallbackToLocal: false }) as BackendSettings;

/** Merges a raw `kiln.backend` object over `previous`; a bad field is named and the previous value kept. */
export function parseBackendSettings(raw: unknown, previous: BackendSettings): { settings: BackendSettings; problems: string[] } {
  const settings = { ...previous };
  const problems: string[] = [];
  if (raw === undefined || raw === null) return { settings, problems };
  if (typeof raw !== 'object' || Array.isArray(raw)) return { settings, problems: ['kiln.backend: must be an object'] };
  const r = raw as Record<string, unknown>;
  // a password typed into the URL is never echoed back into a message
  const shown = (v: unknown) => JSON.stringify(typeof v === 'string' ? v.replace(/\/\/[^/@]*@/, '//…@') : v);
  const reject = (key: string, why: string) => problems.push(`kiln.backend.${key}: ${why} (got ${shown(r[key])}); keeping ${shown(previous[key as keyof BackendSettings])}`);
  if (r.kind !== undefined) {
    if (typeof r.kind === 'string' && (BACKEND_KINDS as readonly string[]).includes(r.kind)) settings.kind = r.kind as BackendKind;
    else reject('kind', `must be one of ${BACKEND_KINDS.join(', ')}`);
  }
  if (r.url !== undefined) {
    const why = typeof r.url === 'string' ? urlProblem(r.url) : 'must be a string';
    if (why) reject('url', why);
    else settings.url = (r.url as string).trim();
  }
  if (r.model !== undefined) {
    if (typeof r.model === 'string') settings.model = r.model.trim();
    else reject('model', 'must be a string');
  }
  if (r.fallbackToLocal !== undefined) {
    if (typeof r.fallbackToLocal === 'boolean') settings.fallbackToLocal = r.fallbackToLocal;
    else reject('fallbackToLocal', 'must be true or false');
  }
  return { settings, problems };
}

/** Why a URL cannot be used, or undefined: http(s) only, no user:password (the key has its own store). */
export function urlProblem(url: string): string | undefined {
  if (url.trim() === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    return 'must be an http:// or https:// URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (parsed.username || parsed.password) return 'must not contain a user name or password (set the API key with "Kiln: Set Remote Backend API Key…")';
  if (parsed.search || parsed.hash) return 'must not have a query or fragment';
  return undefined;
}

/** The API path under the configured base URL (an OpenAI base URL may already end in /v1). */
function endpointUrl(kind: Exclude<BackendKind, 'local'>, base: string): URL {
  const root = new URL(base.trim());
  const path = root.pathname.replace(/\/+$/, '');
  const api = kind === 'openai' ? (path.endsWith('/v1') ? '/completions' : '/v1/completions') : kind === 'llamacpp' ? '/infill' : '/api/generate';
  root.pathname = `${path}${api}`;
  return root;
}

/**
 * The remote backend the settings choose: undefined for `local`; throws with a message for the user
 * when the choice cannot work (no URL, no model name where the API needs one).
 */
export function createTextBackend(settings: BackendSettings, options: { apiKey?: string; limits?: Partial<StreamLimits> } = {}): TextBackend | undefined {
  if (settings.kind === 'local') return undefined;
  if (!settings.url) throw new Error(`"kiln.backend.kind" is ${settings.kind} but "kiln.backend.url" is empty: set the server's URL, or set the kind back to local`);
  const why = urlProblem(settings.url);
  if (why) throw new Error(`"kiln.backend.url" ${why}`);
  if (settings.kind !== 'llamacpp' && !settings.model) throw new Error(`"kiln.backend.kind" ${settings.kind} needs "kiln.backend.model": the model name the server serves`);
  const protocol: BackendProtocol =
    settings.kind === 'openai' ? new OpenAiProtocol(settings.model) : settings.kind === 'ollama' ? new OllamaProtocol(settings.model) : new LlamaCppProtocol();
  const url = endpointUrl(settings.kind, settings.url);
  const label = `${settings.kind} ${url.origin}${settings.model ? ` (${settings.model})` : ''}`;
  return new StreamedBackend(protocol, { url, label, apiKey: options.apiKey || undefined, limits: options.limits });
}
