// The request bodies of the three inference APIs Kiln's remote backends speak, as their documentation
// gives them, for the fake servers of tests/helpers/fake-inference-server.ts. A field the
// documentation does not list, or a value of the wrong type, is refused (400) as the real servers
// refuse or, worse, silently ignore it: so Kiln's client and the fake cannot agree on a field by
// construction, only by both following the documents cited here.
//
//   OpenAI  POST /v1/completions  https://platform.openai.com/docs/api-reference/completions/create
//           (model, prompt, suffix, max_tokens, temperature, top_p, n, stream, stream_options, logprobs,
//           echo, stop, presence_penalty, frequency_penalty, best_of, logit_bias, user, seed)
//   llama.cpp POST /infill       https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md
//           (input_prefix, input_suffix, input_extra [{filename, text}], prompt, and the options of
//           POST /completion: n_predict, t_max_predict_ms, n_indent, cache_prompt, temperature, top_p, …)
//   Ollama  POST /api/generate    https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-completion
//           (model, prompt, suffix, images, format, options, system, template, stream, raw, keep_alive,
//           context, think; `options` are the Modelfile parameters: num_predict, temperature, top_p, …)

type Check = (v: unknown) => boolean;

const string: Check = (v) => typeof v === 'string';
const boolean: Check = (v) => typeof v === 'boolean';
const number: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const integer: Check = (v) => Number.isInteger(v);
const between =
  (lo: number, hi: number): Check =>
  (v) =>
    number(v) && (v as number) >= lo && (v as number) <= hi;
const nullable =
  (c: Check): Check =>
  (v) =>
    v === null || c(v);
const oneOf =
  (...cs: Check[]): Check =>
  (v) =>
    cs.some((c) => c(v));
const arrayOf =
  (c: Check): Check =>
  (v) =>
    Array.isArray(v) && v.every(c);
const object: Check = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const snippet: Check = (v) =>
  object(v) && Object.keys(v as object).every((k) => k === 'filename' || k === 'text') && string((v as { filename?: unknown }).filename) && string((v as { text?: unknown }).text);

export interface Schema {
  required: readonly string[];
  fields: Readonly<Record<string, Check>>;
}

export const OPENAI_COMPLETIONS: Schema = {
  required: ['model', 'prompt'],
  fields: {
    model: string,
    prompt: oneOf(string, arrayOf(string), arrayOf(integer)),
    suffix: nullable(string),
    max_tokens: nullable(integer),
    temperature: nullable(between(0, 2)),
    top_p: nullable(between(0, 1)),
    n: nullable(integer),
    stream: nullable(boolean),
    stream_options: nullable(object),
    logprobs: nullable(integer),
    echo: nullable(boolean),
    stop: nullable(oneOf(string, arrayOf(string))),
    presence_penalty: nullable(between(-2, 2)),
    frequency_penalty: nullable(between(-2, 2)),
    best_of: nullable(integer),
    logit_bias: nullable(object),
    user: string,
    seed: nullable(integer),
  },
};

/** POST /completion's options, which /infill also accepts (README, "POST /completion" options). */
const LLAMA_COMPLETION_OPTIONS: Record<string, Check> = {
  temperature: number,
  dynatemp_range: number,
  dynatemp_exponent: number,
  top_k: integer,
  top_p: number,
  min_p: number,
  n_predict: integer,
  n_indent: integer,
  n_keep: integer,
  stream: boolean,
  stop: arrayOf(string),
  typical_p: number,
  repeat_penalty: number,
  repeat_last_n: integer,
  presence_penalty: number,
  frequency_penalty: number,
  mirostat: integer,
  mirostat_tau: number,
  mirostat_eta: number,
  seed: integer,
  ignore_eos: boolean,
  logit_bias: oneOf(arrayOf(arrayOf(oneOf(number, string, boolean))), object),
  n_probs: integer,
  min_keep: integer,
  t_max_predict_ms: integer,
  id_slot: integer,
  cache_prompt: boolean,
  return_tokens: boolean,
  samplers: arrayOf(string),
  timings_per_token: boolean,
  post_sampling_probs: boolean,
  response_fields: arrayOf(string),
};

export const LLAMACPP_INFILL: Schema = {
  required: ['input_prefix', 'input_suffix'],
  fields: {
    input_prefix: string,
    input_suffix: string,
    input_extra: arrayOf(snippet),
    prompt: string,
    ...LLAMA_COMPLETION_OPTIONS,
  },
};

/** The Modelfile parameters `options` may carry (docs/api.md, "Generate request (With options)"). */
const OLLAMA_OPTIONS: Record<string, Check> = {
  num_keep: integer,
  seed: integer,
  num_predict: integer,
  top_k: integer,
  top_p: number,
  min_p: number,
  typical_p: number,
  repeat_last_n: integer,
  temperature: number,
  repeat_penalty: number,
  presence_penalty: number,
  frequency_penalty: number,
  penalize_newline: boolean,
  stop: arrayOf(string),
  numa: boolean,
  num_ctx: integer,
  num_batch: integer,
  num_gpu: integer,
  main_gpu: integer,
  use_mmap: boolean,
  num_thread: integer,
};

export const OLLAMA_GENERATE: Schema = {
  required: ['model'],
  fields: {
    model: string,
    prompt: string,
    suffix: string,
    images: arrayOf(string),
    format: oneOf(string, object),
    options: (v) => object(v) && validate(v, { required: [], fields: OLLAMA_OPTIONS }) === undefined,
    system: string,
    template: string,
    stream: boolean,
    raw: boolean,
    keep_alive: oneOf(string, number),
    context: arrayOf(integer),
    think: oneOf(boolean, string),
  },
};

/** Why `body` does not fit `schema` (the first problem), or undefined. */
export function validate(body: unknown, schema: Schema): string | undefined {
  if (!object(body)) return 'the body must be a JSON object';
  const b = body as Record<string, unknown>;
  for (const key of schema.required) if (b[key] === undefined) return `"${key}" is required`;
  for (const [key, value] of Object.entries(b)) {
    const check = schema.fields[key];
    if (!check) return `unknown field "${key}"`;
    if (!check(value)) return `field "${key}" has the wrong type or range: ${JSON.stringify(value)}`;
  }
  return undefined;
}
