// Values bound to a secret's name, in any syntax: `DB_PASSWORD=…` (env, shell, Dockerfile),
// `password: …` (YAML, compose), `"apiKey": "…"` (JSON), `token = "…"` (TOML, code), `db.password=…`
// (properties), `<password>…</password>` (XML), `--password=…` (command lines), and `NAME=value`
// inside a line (`docker run -e`, `$ export`, `X=… npm start`; in code only for SCREAMING_CASE
// names). The preset has no such rule (its AWS rule knows one name), so this one is Kiln's.
import { isIdentifierLike, looksLikeKeyMaterial, looksRandom } from './entropy';
import { isExpression, isPlaceholder, parseValue, type ParsedValue } from './values';

/** Where unquoted values are literals ('config': env, YAML, TOML, shell…), expressions ('code'), or either. */
export type ValueContext = 'config' | 'code' | 'unknown';

/** A password-like name holds a secret whatever its value looks like; a key-like name only when the value looks random. */
type NameClass = 'password' | 'key';

const PASSWORD_HEADS = new Set(['password', 'passwd', 'pwd', 'pass', 'passphrase', 'passcode', 'pw', 'secret']);
const KEY_HEADS = new Set([
  'key',
  'apikey',
  'token',
  'auth',
  'authorization',
  'credential',
  'credentials',
  'creds',
  'cookie',
  'session',
  'signing',
  'signature',
  'sig',
  'hmac',
  'salt',
  'pepper',
  'seed',
  'nonce',
  'jwt',
  'bearer',
  'cipher',
  'encryption',
  'encrypt',
  'crypt',
  'private',
  'privkey',
  'master',
  'sid',
  'sas',
]);
/** Words after the noun that keep its meaning: `SECRET_KEY_BASE`, `signing_key_hex`, `TOKEN_VALUE`. */
const QUALIFIERS = new Set([
  'value',
  'val',
  'str',
  'string',
  'b64',
  'base64',
  'hex',
  'raw',
  'data',
  'bytes',
  'base',
  'plain',
  'plaintext',
  'enc',
  'encoded',
  'literal',
  'live',
  'prod',
  'production',
  'dev',
  'test',
  'staging',
  'local',
  'default',
  'v',
]);
/** Run-together names: `dbpassword`, `clientsecret`, `authtoken`, `apikey`. */
const PASSWORD_ENDINGS = /(password|passwd|secret|passphrase)$/;
const KEY_ENDINGS = /(token|apikey|privatekey|secretkey|accesskey|authkey|signingkey)$/;

/** The lower-case words of a name: `spring.datasource.password` → …, password; `adminPassword2` → admin, password. */
export function nameWords(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .map((w) => w.toLowerCase().replace(/\d+$/, ''))
    .filter((w) => w.length > 0);
}

/**
 * `pass` and `pw` alone or ending a camelCase name (`pass: through`, `allPass`) are as often verbs
 * and predicates as passwords; SCREAMING_CASE (`DB_PASS`) is always an environment variable.
 */
export function isWeakName(name: string): boolean {
  const words = nameWords(name);
  const head = words[words.length - 1];
  return (head === 'pass' || head === 'pw') && name !== name.toUpperCase();
}

export function classifyName(name: string): NameClass | undefined {
  const words = nameWords(name);
  let i = words.length - 1;
  while (i > 0 && QUALIFIERS.has(words[i]!)) i--;
  const head = words[i];
  if (head === undefined) return undefined;
  if (PASSWORD_HEADS.has(head) || PASSWORD_ENDINGS.test(head)) return 'password';
  if (KEY_HEADS.has(head) || KEY_ENDINGS.test(head)) return 'key';
  return undefined;
}

export interface ValueSite {
  parsed: ParsedValue;
  context: ValueContext;
  /** Nothing but the assignment on the line (`KEY=value`, `  key: value  # note`): bare values there are literals. */
  wholeLine: boolean;
  /** An XML element's text or an attribute: a literal whether quoted or not. */
  literal?: boolean;
  /** The name is `pass`/`pw`-like (see isWeakName): the value must not read as a word or identifier. */
  weakName?: boolean;
}

/** Words that make a spaced value a label or a hint ("Enter your password"), not a password. */
const LABEL_WORDS = /\b(pass(word|phrase)?s?|passwd|secrets?|tokens?|keys?|enter|your|type|confirm|current|new|old|required|optional|see|the)\b/i;

/** Whether the value at a password-like or key-like name is a secret to hide. */
export function isSecretValue(cls: NameClass, site: ValueSite): boolean {
  const { value, quoted } = site.parsed;
  if (isPlaceholder(value) || value.includes('://')) return false; // URLs are the url-credentials rule's
  const literal = quoted || site.literal === true;
  // A bare value is a literal only where it stands alone (`KEY=value`, `key: value`), never in code.
  if (!literal && (!site.wholeLine || site.context === 'code' || isExpression(value, site.parsed.rest))) return false;
  if (cls === 'key') {
    if (/\s/.test(value)) return false; // keys have no spaces; cookies with attributes, prose
    return (literal || /^[\w+/=.~-]+$/.test(value)) && (looksRandom(value) || looksLikeKeyMaterial(value));
  }
  // A password may hold spaces ("Sunny Days!"); prose about passwords ("Enter your password") may too.
  if (/\s/.test(value) && (site.weakName === true || LABEL_WORDS.test(value) || value.split(/\s+/).length > 6 || /\$\{|\{\{/.test(value))) return false;
  if (value.length < 3 || /^v?\d+(\.\d+)+([-+][\w.]+)?$/.test(value)) return false; // too short, a version
  if (/^[~.]?\/|^[A-Za-z]:\\/.test(value)) return false; // a path
  if (site.weakName === true && (/^[A-Za-z]+$/.test(value) || isIdentifierLike(value))) return false; // `pass: through`, `allPass: overEvery`
  if (literal || site.context === 'config') return true;
  // Where the file's kind is unknown, a bare name (`password = pwd`) may be a variable.
  return !/^[A-Za-z_$][\w$]*$/.test(value) || /\d/.test(value);
}

/** Cheap prefilter: a line with none of these fragments has no secret's name. */
const NAME_HINT = /pass|pwd|pw|secret|token|key|auth|cred|sig|salt|hmac|cookie|session|seed|nonce|cipher|crypt|priv|jwt|bearer|pepper|master|sid|sas/i;
/** `name` (maybe quoted or indexed: `"name"`, `['name']`), then an assignment operator. */
const ASSIGNMENT = /(?<![\w$.-])([A-Za-z_$@][\w$.-]{0,80}?)(["'\]]{0,3})\s{0,8}(:=|=>|===|!==|==|!=|\?=|=(?!=)|:(?![:=/]))\s{0,8}/g;
/** What may stand before a whole-line assignment: indentation, `export `, `ENV `, `- `, `set `, a quote. */
const LINE_PREFIX = /^\s*(export\s+|ENV\s+|ARG\s+|set\s+|SET\s+|-\s+|\$env:)?["']?$/;
/** What may follow a whole-line value: a comment or a trailing comma. */
const LINE_SUFFIX = /^\s*(,?\s*((#|\/\/|;).*)?)$/;
const XML_ELEMENT = /<([A-Za-z_][\w.:-]{0,60})>([^<]{1,512})<\/\1>/g;
const CLI_FLAG = /(?:^|\s)--?([A-Za-z][\w-]{1,60})(=|\s+)(?=[^\s-])/g;

const RULE_NAMES: Record<NameClass, string> = { password: 'password-assignment', key: 'keyed-secret' };

/** `… || "literal"`, `… ?? 'literal'`, `… or "literal"`: the default given to a secret's name. */
const FALLBACK_LITERAL = /^[^"'`;]*?(\|\|=?|\?\?=?|\sor\s)\s*(["'])((?:(?!\2).){1,512})\2/;
/** How far past a name's operator its expression is searched for a literal. */
const LOOKAHEAD = 1200;
/** A quoted run of hex or base64 long enough to be a key. */
const QUOTED_MATERIAL = /["'`]([A-Za-z0-9+/_-]{32,1024}={0,2})["'`]/g;
/** `NAME=value` anywhere on a line (`docker run -e`, `$ export`, `X=1 npm start`, `--from-literal=`). */
const ENV_PAIR = /(?<=^|[\s`'"=:([{,;>*])([A-Za-z_][\w.-]{0,80})=(?![=>])/g; // not `==`, `=>`
/** An environment variable's name: `DB_PASSWORD`, `API_TOKEN`. */
const SCREAMING = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$|^[A-Z]{2,}$/;

/** Whole-line `password = Sunny Days Forever` (ini, YAML, .env): the bare value is the rest of the line. */
function spacedValue(line: string, from: number, parsed: ParsedValue): ParsedValue {
  if (parsed.quoted || !/^\s*\S/.test(parsed.rest) || /^\s*(#|\/\/|;)/.test(parsed.rest)) return parsed;
  const value = line
    .slice(from)
    .replace(/\s+#.*$/, '')
    .trim();
  return { value, quoted: false, rest: '' };
}

/** The rule name when `NAME=value` stands inside a line: in code only for environment-variable names. */
function envPairSecret(line: string, context: ValueContext): string | undefined {
  if (!line.includes('=')) return undefined;
  for (const m of line.matchAll(ENV_PAIR)) {
    const name = m[1]!.replace(/^.*[.:]/, '');
    if (context === 'code' && !SCREAMING.test(name)) continue;
    const cls = classifyName(name);
    if (cls === undefined) continue;
    const parsed = parseValue(line, m.index + m[0].length);
    // `NAME=<your password>`, `NAME={pw}`: a placeholder cut at its first space, or a template.
    if (parsed === undefined || /^\s*[(.[]/.test(parsed.rest) || (!parsed.quoted && /^[<{[]/.test(parsed.value))) continue;
    const site: ValueSite = { parsed, context: context === 'code' ? 'unknown' : 'config', wholeLine: true, weakName: isWeakName(name) };
    if (isSecretValue(cls, site)) return RULE_NAMES[cls];
  }
  return undefined;
}

/** The rule name when the line binds a secret value to a password-like or key-like name. */
export function secretAssignment(line: string, context: ValueContext): string | undefined {
  if (!NAME_HINT.test(line)) return undefined;
  for (const m of line.matchAll(ASSIGNMENT)) {
    const cls = classifyName(m[1]!);
    if (cls === undefined) continue;
    const from = m.index + m[0].length;
    let parsed = parseValue(line, from);
    if (parsed === undefined) continue;
    const prefixOnly = LINE_PREFIX.test(line.slice(0, m.index));
    if (prefixOnly && context !== 'code' && cls === 'password' && /^(=|:)$/.test(m[3]!)) parsed = spacedValue(line, from, parsed);
    const wholeLine = prefixOnly && LINE_SUFFIX.test(parsed.rest);
    const weakName = isWeakName(m[1]!);
    // Where the file's kind is unknown, a whole-line `name: value` with no trailing comma reads as YAML.
    const yamlLike = context === 'unknown' && wholeLine && m[3] === ':' && !/^\s*,/.test(parsed.rest);
    if (isSecretValue(cls, { parsed, context: yamlLike ? 'config' : context, wholeLine, weakName })) return RULE_NAMES[cls];
    // `KEY = Buffer.from("6b69…", "hex")`: key material quoted inside the expression bound to a key's name.
    const statement = line.slice(from, from + LOOKAHEAD); // bounded, so a long line stays linear
    if (cls === 'key' && [...statement.matchAll(QUOTED_MATERIAL)].some((q) => looksLikeKeyMaterial(q[1]!))) return RULE_NAMES[cls];
    // `password: process.env.PW ?? "Winter2024!"`: the default is a literal.
    const fallback = FALLBACK_LITERAL.exec(statement);
    if (fallback !== null && isSecretValue(cls, { parsed: { value: fallback[3]!, quoted: true, rest: '' }, context, wholeLine: false, weakName })) return RULE_NAMES[cls];
  }
  const pair = envPairSecret(line, context);
  if (pair !== undefined) return pair;
  for (const m of line.matchAll(XML_ELEMENT)) {
    const cls = classifyName(m[1]!);
    const parsed = { value: m[2]!.trim(), quoted: false, rest: '' };
    if (cls !== undefined && isSecretValue(cls, { parsed, context, wholeLine: true, literal: true })) return RULE_NAMES[cls];
  }
  for (const m of line.matchAll(CLI_FLAG)) {
    const cls = classifyName(m[1]!);
    if (cls === undefined) continue;
    const parsed = parseValue(line, m.index + m[0].length);
    // A flag's bare value may be a name standing for it (`--client-secret clientSecret`), as in unknown files.
    if (parsed !== undefined && isSecretValue(cls, { parsed, context: 'unknown', wholeLine: true })) return RULE_NAMES[cls];
  }
  return undefined;
}
