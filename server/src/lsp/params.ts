// Request params checked at the boundary: JSON from the client becomes a typed object here, or the
// request fails with InvalidParams naming the field. Handlers never see a NaN offset or a missing uri.
import { ErrorCodes, InlineCompletionTriggerKind, ResponseError } from 'vscode-languageserver/node';
import type { CursorParams, CursorReason, FineTuneParams, PromptParams, ValidateModelParams, VisibleRangesParams } from '../protocol';

/** LSP's `uinteger` ends here; positions beyond it are not positions. */
const MAX_UINTEGER = 2 ** 31 - 1;

type Fields = Record<string, unknown>;

export function invalidParams(message: string): ResponseError<void> {
  return new ResponseError(ErrorCodes.InvalidParams, message);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

function object(value: unknown, name: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidParams(`${name} must be an object, got ${describe(value)}`);
  return value as Fields;
}

function nonEmptyString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) throw invalidParams(`${name} must be a non-empty string, got ${describe(value)}`);
  return value;
}

function uinteger(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_UINTEGER) {
    throw invalidParams(`${name} must be an integer from 0 to ${MAX_UINTEGER}, got ${describe(value)}`);
  }
  return value;
}

function optionalPositiveInteger(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw invalidParams(`${name} must be a positive integer, got ${describe(value)}`);
  return value;
}

function optionalPositiveNumber(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw invalidParams(`${name} must be a positive number, got ${describe(value)}`);
  return value;
}

/** What the inline-completion handler reads of textDocument/inlineCompletion's params. */
export interface InlineCompletionInput {
  uri: string;
  position: { line: number; character: number };
  /** The user asked (Invoked) rather than typed (Automatic). */
  explicit: boolean;
}

const TRIGGER_KINDS: unknown[] = [InlineCompletionTriggerKind.Invoked, InlineCompletionTriggerKind.Automatic];

export function parseInlineCompletionParams(raw: unknown): InlineCompletionInput {
  const params = object(raw, 'params');
  const uri = nonEmptyString(object(params.textDocument, 'textDocument').uri, 'textDocument.uri');
  const position = object(params.position, 'position');
  const line = uinteger(position.line, 'position.line');
  const character = uinteger(position.character, 'position.character');
  const context = object(params.context, 'context');
  if (!TRIGGER_KINDS.includes(context.triggerKind)) {
    throw invalidParams(
      `context.triggerKind must be ${InlineCompletionTriggerKind.Invoked} (invoked) or ${InlineCompletionTriggerKind.Automatic} (automatic), got ${describe(context.triggerKind)}`,
    );
  }
  return { uri, position: { line, character }, explicit: context.triggerKind === InlineCompletionTriggerKind.Invoked };
}

const CURSOR_REASONS: unknown[] = ['focus', 'move'] satisfies CursorReason[];

export function parseCursorParams(raw: unknown): CursorParams {
  const params = object(raw, 'params');
  const uri = nonEmptyString(object(params.textDocument, 'textDocument').uri, 'textDocument.uri');
  const position = object(params.position, 'position');
  const line = uinteger(position.line, 'position.line');
  const character = uinteger(position.character, 'position.character');
  if (!CURSOR_REASONS.includes(params.reason)) throw invalidParams(`reason must be "focus" or "move", got ${describe(params.reason)}`);
  return { textDocument: { uri }, position: { line, character }, reason: params.reason as CursorReason };
}

export function parseValidateModelParams(raw: unknown): ValidateModelParams {
  return { path: nonEmptyString(object(raw, 'params').path, 'path') };
}

const FINE_TUNE_MODES: unknown[] = ['lora', 'full'] satisfies FineTuneParams['mode'][];

/**
 * Checks every field kiln/fineTune defines. The params object itself is passed on (not a copy of the
 * known fields), so a field the fine-tune slice adds reaches its handler, which checks it.
 */
export function parseFineTuneParams(raw: unknown): FineTuneParams {
  const params = object(raw, 'params');
  nonEmptyString(params.workspace, 'workspace');
  if (params.mode !== undefined && !FINE_TUNE_MODES.includes(params.mode)) throw invalidParams(`mode must be "lora" or "full", got ${describe(params.mode)}`);
  for (const name of ['maxSteps', 'maxFiles', 'rank'] as const) optionalPositiveInteger(params[name], name);
  optionalPositiveNumber(params.learningRate, 'learningRate');
  optionalPositiveNumber(params.minutes, 'minutes');
  return params as unknown as FineTuneParams;
}

/** Ranges kept of one kiln/visibleRanges notification (an editor shows a few at most). */
const MAX_VISIBLE_RANGES = 8;

export function parseVisibleRangesParams(raw: unknown): VisibleRangesParams {
  const params = object(raw, 'params');
  const uri = nonEmptyString(params.uri, 'uri');
  if (!Array.isArray(params.ranges)) throw invalidParams(`ranges must be a list, got ${describe(params.ranges)}`);
  const ranges = params.ranges.slice(0, MAX_VISIBLE_RANGES).map((r, i) => {
    const range = object(r, `ranges[${i}]`);
    const start = uinteger(range.start, `ranges[${i}].start`);
    const end = uinteger(range.end, `ranges[${i}].end`);
    if (end < start) throw invalidParams(`ranges[${i}] ends (${end}) before it starts (${start})`);
    return { start, end };
  });
  return { uri, ranges };
}

export function parsePromptParams(raw: unknown): PromptParams {
  const params = object(raw, 'params');
  const uri = nonEmptyString(params.uri, 'uri');
  const position = object(params.position, 'position');
  return { uri, position: { line: uinteger(position.line, 'position.line'), character: uinteger(position.character, 'position.character') } };
}
