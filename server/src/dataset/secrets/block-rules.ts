// Kiln's multi-line rules: secrets whose lines only mean something together. Each marks the lines
// (0-based) it blanks, by rule name, and leaves lines already marked alone.

export type LineMarks = (string | undefined)[];

/**
 * PEM and OpenSSH private keys, blanked from BEGIN to END (to the end of the text when END is
 * missing). The preset's privatekey rule needs a terminated block with a 100+ character body of
 * one of five named types, so an encrypted, truncated or JSON-escaped key would pass it.
 */
const PRIVATE_KEY_BEGIN = /-{4,5} ?BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)? ?-{4,5}/;
const PRIVATE_KEY_END = /-{4,5} ?END [A-Z0-9 ]*PRIVATE KEY( BLOCK)? ?-{4,5}/;
/** PuTTY .ppk keys, from the header to the MAC (not in the preset). */
const PUTTY_BEGIN = /PuTTY-User-Key-File-\d+:/;
const PUTTY_END = /^\s*Private-(MAC|Hash):/;

/** A block secret: the rule that names it and the lines that open and close it. */
interface BlockRule {
  rule: string;
  begin: RegExp;
  end: RegExp;
}

function markSpans(lines: readonly string[], marks: LineMarks, { rule, begin, end }: BlockRule): void {
  for (let i = 0; i < lines.length; i++) {
    if (!begin.test(lines[i]!)) continue;
    let j = i; // END on the BEGIN line itself (a one-line, escaped key) closes the span there
    while (j < lines.length - 1 && !end.test(lines[j]!)) j++;
    for (let k = i; k <= j; k++) marks[k] ??= rule;
    i = j;
  }
}

/**
 * The values under `data:` and `stringData:` in a YAML document of `kind: Secret` (not in the
 * preset): base64 values that are neither named like secrets nor random-looking when short.
 */
const KIND_SECRET = /^\s*(-\s+)?kind:\s*["']?Secret["']?\s*(#.*)?$/;
const DATA_KEY = /^(\s*)(-\s+)?(data|stringData):\s*(\S.*)?$/;
const DOCUMENT_SEPARATOR = /^(---|\.\.\.)\s*$/;

function markKubernetesSecrets(lines: readonly string[], marks: LineMarks): void {
  let start = 0;
  for (let end = 0; end <= lines.length; end++) {
    if (end < lines.length && !DOCUMENT_SEPARATOR.test(lines[end]!)) continue;
    if (lines.slice(start, end).some((l) => KIND_SECRET.test(l))) markSecretData(lines, marks, start, end);
    start = end + 1;
  }
}

function markSecretData(lines: readonly string[], marks: LineMarks, start: number, end: number): void {
  for (let i = start; i < end; i++) {
    const m = DATA_KEY.exec(lines[i]!);
    if (m === null) continue;
    const indent = m[1]!.length + (m[2]?.length ?? 0);
    if (m[4] !== undefined && !m[4].startsWith('#')) marks[i] ??= 'kubernetes-secret'; // `data: {a: b}` inline
    let j = i + 1;
    for (; j < end; j++) {
      const line = lines[j]!;
      if (line.trim().length > 0 && line.search(/\S/) <= indent) break;
      if (line.trim().length > 0) marks[j] ??= 'kubernetes-secret';
    }
    i = j - 1;
  }
}

/**
 * netrc entries (not in the preset): `machine host login user password pw` on one line, or a
 * `machine` line followed by `login`/`password`/`account` lines.
 */
const NETRC_ONE_LINE = /\bmachine\s+\S+\s+(login\s+\S+\s+)?(password|account)\s+\S+/;
const NETRC_ENTRY_START = /^\s*(machine\s+\S+|default)\b/;
const NETRC_TOKEN_LINE = /^\s*(login|password|account|port|macdef)\s+\S+/;
const NETRC_SECRET_LINE = /^\s*(password|account)\s+\S+|\s(password|account)\s+\S+/;

function markNetrc(lines: readonly string[], marks: LineMarks): void {
  let inEntry = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (NETRC_ONE_LINE.test(line)) marks[i] ??= 'netrc';
    if (NETRC_ENTRY_START.test(line)) inEntry = true;
    else if (!NETRC_TOKEN_LINE.test(line)) inEntry = false;
    if (inEntry && NETRC_SECRET_LINE.test(line)) marks[i] ??= 'netrc';
  }
}

/** Applies every block rule to `lines`. */
export function markBlocks(lines: readonly string[], marks: LineMarks): void {
  markSpans(lines, marks, { rule: 'private-key', begin: PRIVATE_KEY_BEGIN, end: PRIVATE_KEY_END });
  markSpans(lines, marks, { rule: 'putty-private-key', begin: PUTTY_BEGIN, end: PUTTY_END });
  markKubernetesSecrets(lines, marks);
  markNetrc(lines, marks);
}
