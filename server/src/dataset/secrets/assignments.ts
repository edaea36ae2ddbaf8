// Values bound to a secret's name, in any syntax: `DB_PASSWORD=…` (env, shell, Dockerfile),
// `password: …` (YAML, compose), `"apiKey": "…"` (JSON), `token = "…"` (TOML, code), `db.password=…`
// (properties), `<password>…</password>` (XML), `--password=…` (command lines). The preset has no
// such rule (its AWS rule knows one name), so this one is Kiln's.
import { looksLikeKeyMaterial, looksRandom } from './entropy';
import { isExpression, isPlaceholder, parseValue, type ParsedValue } from './values';

/** Where unquoted values are literals ('config': env, YAML, TOML, shell…), expressions ('code'), or either. */
export type ValueContext = 'config' | 'code' | 'unknown';

/** A password-like name holds a secret whatever its value looks like; a key-like name only when the value looks random. */
type NameClass = 'password' | 'key';

const PASSWORD_HEADS = new Set(['password', 'passwd', 'pwd', 'pass', 'passphrase', 'passcode', 'pw', 'secret']);
const KEY_HEADS = new Set([
  'key', 'apikey', 'token', 'auth', 'authorization', 'credential', 'credentials', 'creds', 'cookie', 'session',
  'signing', 'signature', 'sig', 'hmac', 'salt', 'pepper', 'seed', 'nonce', 'jwt', 'bearer', 'cipher',
  'encryption', 'encrypt', 'crypt', 'private', 'privkey', 'master', 'sid', 'sas',
]);
/** Words after the noun that keep its meaning: `SECRET_KEY_BASE`, `signing_key_hex`, `TOKEN_VALUE`. */
const QUALIFIERS = new Set([
  'value', 'val', 'str', 'string', 'b64', 'base64', 'hex', 'raw', 'data', 'bytes', 'base', 'plain', 'plaintext',
  'enc', 'encoded', 'literal', 'live', 'prod', 'production', 'dev', 'test', 'staging', 'local', 'default', 'v',
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
}

/** Whether the value at a password-like or key-like name is a secret to hide. */
export function isSecretValue(cls: NameClass, site: ValueSite): boolean {
  const { value, quoted } = site.parsed;
  if (isPlaceholder(value) || value.includes('://')) return false; // URLs are the url-credentials rule's
  const literal = quoted || site.literal === true;
  // A bare value is a literal only where it stands alone (`KEY=value`, `key: value`), never in code.
  if (!literal && (!site.wholeLine || site.context === 'code' || isExpression(value, site.parsed.rest))) return false;
  if (/\s/.test(value)) return false; // words with spaces are prose ("Enter password"), cookies with attributes
  if (cls === 'key') return (literal || /^[\w+/=.~-]+$/.test(value)) && (looksRandom(value) || looksLikeKeyMaterial(value));
  if (value.length < 3 || /^v?\d+(\.\d+)+([-+][\w.]+)?$/.test(value)) return false; // too short, a version
  if (/^[A-Z][a-z]+$/.test(value) || /^[~.]?\/|^[A-Za-z]:\\/.test(value)) return false; // a label, a path
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

/** The rule name when the line binds a secret value to a password-like or key-like name. */
export function secretAssignment(line: string, context: ValueContext): string | undefined {
  if (!NAME_HINT.test(line)) return undefined;
  for (const m of line.matchAll(ASSIGNMENT)) {
    const cls = classifyName(m[1]!);
    if (cls === undefined) continue;
    const parsed = parseValue(line, m.index + m[0].length);
    if (parsed === undefined) continue;
    const wholeLine = LINE_PREFIX.test(line.slice(0, m.index)) && LINE_SUFFIX.test(parsed.rest);
    if (isSecretValue(cls, { parsed, context, wholeLine })) return RULE_NAMES[cls];
  }
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
