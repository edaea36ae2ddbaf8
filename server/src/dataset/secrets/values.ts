// What a value next to a secret's name is: a literal worth hiding, or a placeholder, reference or
// expression that holds nothing.

/**
 * `${DB_PASSWORD}`, `{{ .Values.pw }}`, `<password>`, `%(pw)s`, `$PW`, `****`, `xxxx`, `null`, a type
 * name. Words such as `changeme` or `example` are not here: somewhere they are the real password.
 */
export function isPlaceholder(value: string): boolean {
  const v = value.trim();
  if (v.length === 0) return true;
  if (/^(\$\{|\$\(|\{\{|#\{|%\()|^\$[A-Za-z_]\w*$|^<[^>]*>$|^%s$/.test(v)) return true; // templates, references
  if (/^(.)\1*$/.test(v)) return true; // one character repeated
  return /^(null|nil|none|undefined|true|false|yes|no|~|empty|required|optional|string|str|number|int|boolean|bool|bytes|any|unknown|object|secret|password|token)$/i.test(v);
}

/** The value right after an assignment operator at `from`: quoted (quotes dropped) or bare to the next separator. */
export interface ParsedValue {
  value: string;
  quoted: boolean;
  /** The rest of the line after the value (a bare value's terminator included). */
  rest: string;
}

const QUOTES = new Set(['"', "'", '`']);

export function parseValue(line: string, from: number): ParsedValue | undefined {
  let i = from;
  // Python/C#/C++ string prefixes: r"…", b'…', u"…", @"…", L"…".
  if (/[rRbBuUL@]/.test(line[i] ?? '') && QUOTES.has(line[i + 1] ?? '')) i++;
  // A YAML tag that only names the scalar's type: `!!str 12345678`.
  const tag = /^!!(str|binary)\s+(?=\S)/.exec(line.slice(i));
  if (tag !== null) i += tag[0].length;
  const quote = line[i] ?? '';
  // TOML and Python triple quotes closed on the same line: `'''…'''`, `"""…"""`.
  if ((quote === '"' || quote === "'") && line.startsWith(quote.repeat(3), i)) {
    const close = line.indexOf(quote.repeat(3), i + 3);
    if (close < 0) return undefined;
    return { value: line.slice(i + 3, close), quoted: true, rest: line.slice(close + 3) };
  }
  if (QUOTES.has(quote)) {
    let j = i + 1;
    // A backslash escapes the quote; in single quotes (YAML, SQL) a doubled quote does too: `'it''s'`.
    for (; j < line.length; j++) {
      if (line[j] !== quote || line[j - 1] === '\\') continue;
      if (quote === "'" && line[j + 1] === "'") j++;
      else break;
    }
    if (j >= line.length) return undefined; // unterminated: a multi-line string, not a one-line literal
    const value = line.slice(i + 1, j);
    if (quote === '`' && value.includes('${')) return undefined; // a template
    return { value, quoted: true, rest: line.slice(j + 1) };
  }
  const bare = /^[^\s,;'"`]+/.exec(line.slice(i));
  if (bare === null) return undefined;
  return { value: bare[0], quoted: false, rest: line.slice(i + bare[0].length) };
}

/**
 * Whether a bare value is code or structure rather than a literal: an object, list or group, a YAML
 * tag, anchor or block marker, a call, index or generic type (`f(`, `x[0]`, `Map<K>`), a member chain (`os.environ`).
 */
export function isExpression(value: string, rest: string): boolean {
  if (/^[[{(]/.test(value)) return true; // an object, list or group
  if (/^[!&*@]+[A-Za-z_][\w.-]*$/.test(value) || /^[|>][-+\d]*$/.test(value)) return true; // `!x`, `&ref`, `@dec`, YAML tags, anchors, blocks
  if (/^[A-Za-z_$][\w$]*$/.test(value) && /^\s*[(.[<]/.test(rest)) return true; // `f (`, `x .y`, `List<`
  if (/^[A-Za-z_$][\w$.]*[<>()[\]]/.test(value)) return true; // `Map<K>`, `f()`, `x[0]`, `Buffer)`
  if (/^[A-Za-z_$][\w$]*([.?]+[A-Za-z_$][\w$]*)+\(?$/.test(value)) return true; // `os.environ`, `a?.b`
  return false;
}
