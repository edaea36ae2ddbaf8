// Kiln's rules for secrets spread over a document's structure rather than one assignment: YAML
// block and continued scalars under a secret's name (`password: |`, `password:` then the value on
// the next line), and Markdown tables whose header or row names a secret. Not in the preset.
import { classifyName, isSecretValue, isWeakName, type ValueContext } from './assignments';
import { looksLikeKeyMaterial } from './entropy';
import type { LineMarks } from './block-rules';
import { isExpression } from './values';

const RULE_NAMES = { password: 'password-assignment', key: 'keyed-secret' } as const;

/** `name: |`, `name: >-`, `name: !!binary |`, or `name:` alone (then only in configuration files). */
const YAML_BLOCK_HEAD = /^(\s*)(?:-\s+)?["']?([A-Za-z_][\w.-]{0,80})["']?\s*:\s*(?:(?:!!\w+\s+)?([|>][-+0-9]*))?\s*(?:#.*)?$/;
/** A more-indented line that starts a nested mapping, list or comment: structure, not a scalar's text. */
const YAML_STRUCTURE = /^\s*(-(\s|$)|["']?[\w.$-]+["']?\s*:(\s|$)|#|[{[])/;
/** Base64, hex or PEM text: what a key-named block holds when it holds a key. */
const KEY_TEXT = /^[A-Za-z0-9+/=_-]{16,}$|^-{4,5} ?(BEGIN|END) /;

function markYamlBlocks(lines: readonly string[], marks: LineMarks, context: ValueContext): void {
  for (let i = 0; i < lines.length - 1; i++) {
    const m = YAML_BLOCK_HEAD.exec(lines[i]!);
    if (m === null) continue;
    const cls = classifyName(m[2]!);
    if (cls === undefined || (m[3] === undefined && context === 'code')) continue;
    const indent = m[1]!.length;
    const first = lines.slice(i + 1).findIndex((l) => l.trim() !== '');
    const firstLine = first < 0 ? undefined : lines[i + 1 + first]!;
    if (firstLine === undefined || firstLine.search(/\S/) <= indent) continue;
    if (m[3] === undefined && YAML_STRUCTURE.test(firstLine)) continue; // `password:` then a nested mapping
    let end = i + 1;
    while (end < lines.length && (lines[end]!.trim() === '' || lines[end]!.search(/\S/) > indent)) end++;
    const body = lines.slice(i + 1, end).filter((l) => l.trim() !== '');
    const text = body.map((l) => l.trim());
    const secret =
      cls === 'key'
        ? text.every((t) => KEY_TEXT.test(t)) && (text.length > 1 || looksLikeKeyMaterial(text[0]!))
        : isSecretValue(cls, { parsed: { value: text.join(' '), quoted: true, rest: '' }, context, wholeLine: true, weakName: isWeakName(m[2]!) });
    if (!secret) continue;
    for (let k = i + 1; k < end; k++) if (lines[k]!.trim() !== '') marks[k] ??= RULE_NAMES[cls];
    i = end - 1;
  }
}

const TABLE_ROW = /^\s*\|.*\|\s*$/;
const TABLE_SEPARATOR = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;

/** A cell's text without Markdown emphasis, code ticks and quotes. */
function cellText(cell: string): string {
  return cell
    .trim()
    .replace(/^(\*\*|__|`|["'])+|(\*\*|__|`|["'])+$/g, '')
    .trim();
}

function cellsOf(row: string): string[] {
  return row
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|')
    .map(cellText);
}

/** Whether `value`, in a column or after a cell named `name`, is a secret (prose, links and types are not). */
function tableSecret(name: string, value: string, context: ValueContext): 'password' | 'key' | undefined {
  const cls = classifyName(name);
  if (cls === undefined || /\s|^\[|^-+$|^n\/a$/i.test(value) || isExpression(value, '')) return undefined;
  const site = { parsed: { value, quoted: true, rest: '' }, context, wholeLine: true, weakName: isWeakName(name) };
  return isSecretValue(cls, site) ? cls : undefined;
}

function markMarkdownTables(lines: readonly string[], marks: LineMarks, context: ValueContext): void {
  let header: string[] | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!TABLE_ROW.test(line)) {
      header = undefined;
      continue;
    }
    if (TABLE_SEPARATOR.test(line)) continue;
    if (header === undefined && i + 1 < lines.length && TABLE_SEPARATOR.test(lines[i + 1]!)) {
      header = cellsOf(line);
      continue;
    }
    const cells = cellsOf(line);
    for (const [c, value] of cells.entries()) {
      const byHeader = header?.[c] === undefined ? undefined : tableSecret(header[c]!, value, context);
      const byRow = c === 0 ? undefined : tableSecret(cells[c - 1]!, value, context);
      const cls = byHeader ?? byRow;
      if (cls !== undefined) {
        marks[i] ??= RULE_NAMES[cls];
        break;
      }
    }
  }
}

/** Applies the document rules to `lines`. */
export function markDocuments(lines: readonly string[], marks: LineMarks, context: ValueContext): void {
  markYamlBlocks(lines, marks, context);
  markMarkdownTables(lines, marks, context);
}
