// The declarations a file imports by relative path, found without a language server: the import
// statements are read with a few patterns (TS/JS `import … from './x'`, `export … from`, `require`;
// Python `from .x import y`), resolved against the workspace's paths, and the imported names'
// declarations are cut out of the target file as signatures (bodies dropped).
import { posix } from 'node:path';
import { splitLines } from './snippet';

export type ImportLanguage = 'js' | 'python';

export interface RelativeImport {
  /** The module as written ('./x', '../y/z', '.mod', '..pkg.mod'). */
  spec: string;
  /** Names imported; undefined when the whole module is (namespace, default, side effect, `from . import mod`). */
  names?: string[];
}

const JS_EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs'];

export function languageOf(path: string): ImportLanguage | undefined {
  const ext = posix.extname(path).toLowerCase();
  if (ext === '.py' || ext === '.pyi') return 'python';
  return JS_EXTENSIONS.includes(ext) ? 'js' : undefined;
}

const JS_FROM = /\b(?:import|export)\s+(?:type\s+)?([\s\S]{0,400}?)\s+from\s+['"](\.{1,2}\/[^'"\n]*)['"]/g;
const JS_BARE = /(?:\bimport\s*\(?\s*|\brequire\s*\(\s*)['"](\.{1,2}\/[^'"\n]*)['"]/g;
/** The names run to the line's end, a comment or a `;` (a backslash continues the line), or are parenthesised. */
const PY_FROM = /^[ \t]*from[ \t]+(\.+[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|(?:[^\n#;\\]|\\\r?\n)+)/gm;

/** Names bound by a JS import clause: `{ a, b as c, type d }` gives a, b, d; a default or namespace import gives none. */
function jsNames(clause: string): string[] | undefined {
  const braces = /\{([^}]*)\}/.exec(clause);
  if (braces === null) return undefined;
  const names = braces[1]!
    .split(',')
    .map((part) =>
      part
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)[0]!
        .trim(),
    )
    .filter((n) => /^[A-Za-z_$][\w$]*$/.test(n));
  // `import D, { a } from` also wants the default export: leave the whole module in
  return /^\s*[A-Za-z_$][\w$]*\s*,/.test(clause) ? undefined : names;
}

/** The relative imports of a file, in the order they appear, one per module (names merged). */
export function parseRelativeImports(path: string, text: string): RelativeImport[] {
  const lang = languageOf(path);
  const found = new Map<string, RelativeImport>();
  const add = (spec: string, names: string[] | undefined) => {
    const known = found.get(spec);
    if (known === undefined) found.set(spec, names === undefined ? { spec } : { spec, names });
    else if (known.names !== undefined) {
      if (names === undefined) delete known.names;
      else known.names = [...new Set([...known.names, ...names])];
    }
  };
  const head = text.slice(0, 64 * 1024); // imports sit at the top; a huge file is not scanned whole
  if (lang === 'js') {
    for (const m of head.matchAll(JS_FROM)) add(m[2]!, jsNames(m[1]!));
    for (const m of head.matchAll(JS_BARE)) if (!found.has(m[1]!)) add(m[1]!, undefined);
  } else if (lang === 'python') {
    for (const m of head.matchAll(PY_FROM)) {
      const spec = m[1]!;
      // `from .x import *` takes the whole module
      if (m[2]!.trim() === '*') {
        add(spec, undefined);
        continue;
      }
      const names = m[2]!
        .replace(/[()\\]/g, '')
        .split(',')
        .map((p) =>
          p
            .trim()
            .split(/\s+as\s+/)[0]!
            .trim(),
        )
        .filter((n) => /^\w+$/.test(n));
      // `from . import mod` imports modules, not names: each is its own module
      if (/^\.+$/.test(spec)) for (const n of names) add(`${spec}${n}`, undefined);
      else add(spec, names);
    }
  }
  return [...found.values()];
}

/** The workspace path an import resolves to, or undefined; `exists` says whether a path is a known file. */
export function resolveImport(fromPath: string, spec: string, exists: (path: string) => boolean): string | undefined {
  const dir = posix.dirname(fromPath);
  const lang = languageOf(fromPath);
  const candidates: string[] = [];
  if (lang === 'python') {
    const dots = /^\.+/.exec(spec)![0].length;
    let base = dir;
    for (let i = 1; i < dots; i++) base = posix.dirname(base);
    const rest = spec.slice(dots).split('.').filter(Boolean).join('/');
    const target = rest ? posix.join(base, rest) : base;
    candidates.push(`${target}.py`, `${target}.pyi`, `${target}/__init__.py`);
  } else {
    const target = posix.join(dir, spec);
    const stem = target.replace(/\.(m|c)?js$/, ''); // TS sources import './x.js' for './x.ts'
    candidates.push(target, ...JS_EXTENSIONS.map((e) => stem + e), ...JS_EXTENSIONS.map((e) => `${target}/index${e}`));
  }
  return candidates.map((c) => posix.normalize(c)).find((c) => !c.startsWith('../') && exists(c));
}

const JS_DECL = /^(?:export\s+)?(?:default\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(function\*?|class|interface|type|enum|const|let|var)\s+([A-Za-z_$][\w$]*)/;
const PY_DECL = /^(?:async\s+)?(def|class)\s+(\w+)|^([A-Za-z_]\w*)\s*(?::[^=]*)?=/;
const MAX_DECLARATION_CHARS = 200;

/** Signature of one line: a function's body after its opening brace dropped, a class's header kept open for its members. */
function signature(line: string, lang: ImportLanguage, kind: string): string {
  const cut = line.length > MAX_DECLARATION_CHARS ? `${line.slice(0, MAX_DECLARATION_CHARS)}…` : line;
  if (lang === 'python') return cut.trimEnd();
  const brace = cut.indexOf('{');
  if (brace < 0 || !['function', 'function*', 'class', 'interface', 'enum', 'member'].includes(kind)) return cut.trimEnd();
  return kind === 'class' || kind === 'interface' ? cut.slice(0, brace + 1) : `${cut.slice(0, brace + 1)} … }`;
}

/** A member line of a class or interface body worth showing (methods, fields), one indent level in. */
function isMember(line: string, lang: ImportLanguage): boolean {
  const t = line.trim();
  if (lang === 'python') return /^(async\s+)?def\s+\w+/.test(t);
  return /^(?:(?:public|private|protected|static|readonly|abstract|async|get|set|declare)\s+)*[A-Za-z_$#][\w$]*\??\s*[(:<=]/.test(t) && !/^(if|for|while|switch|return)\b/.test(t);
}

/**
 * The declarations of `names` (all top-level ones when undefined) in `text`, as signature lines, a
 * class's or interface's members included, at most `maxLines` lines. A whole-module import takes
 * the exported declarations (every top-level one of a CommonJS module), private names (leading _
 * in Python) left out.
 */
export function declarationsOf(text: string, lang: ImportLanguage, names: readonly string[] | undefined, maxLines = 24): string {
  const lines = splitLines(text);
  const wanted = names === undefined ? undefined : new Set(names);
  // a CommonJS module exports through module.exports: its top-level declarations are what it offers
  const esm = lang === 'js' && /^export\b/m.test(text);
  const out: string[] = [];
  for (let i = 0; i < lines.length && out.length < maxLines; i++) {
    const line = lines[i]!;
    if (line.length === 0 || /^\s/.test(line)) continue; // top level only
    const m = (lang === 'js' ? JS_DECL : PY_DECL).exec(line);
    if (m === null) continue;
    const kind = m[1] ?? 'assign';
    const name = m[2] ?? m[3]!;
    if (wanted !== undefined ? !wanted.has(name) : lang === 'python' ? name.startsWith('_') : esm && !/^export\b/.test(line)) continue;
    out.push(signature(line, lang, kind));
    if (kind !== 'class' && kind !== 'interface') continue;
    let indent: string | undefined;
    for (let j = i + 1; j < lines.length && out.length < maxLines; j++) {
      const member = lines[j]!;
      if (member.trim() === '') continue;
      if (!/^\s/.test(member)) break; // back at the top level: the body ended
      const lead = /^\s*/.exec(member)![0];
      indent ??= lead;
      if (lead === indent && isMember(member, lang)) out.push(signature(member, lang, 'member'));
    }
    if (lang === 'js' && out[out.length - 1]!.endsWith('{')) out[out.length - 1] += ' }';
    else if (lang === 'js') out.push('}'); // the body may pass maxLines by this one line: never left open
  }
  return out.join('\n');
}
