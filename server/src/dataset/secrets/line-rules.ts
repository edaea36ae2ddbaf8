// Kiln's own one-line rules, each for a shape secretlint's recommended preset does not cover (the
// reason is on each rule). A rule names the line as secret or not; the scrubber blanks the line.
import { looksRandom } from './entropy';
import { isPlaceholder } from './values';

export interface LineRule {
  name: string;
  test(line: string): boolean;
}

/**
 * A token shape, searched for in the whole text at once (no pattern crosses a line break); the match
 * or a group of its lookbehind must hold a digit, which words and identifiers of that shape lack.
 */
export interface ShapeRule {
  name: string;
  pattern: RegExp;
}

/** Every match of a shape rule in `text`, as character spans. */
export function findShapes(text: string): { rule: string; start: number; end: number }[] {
  const found: { rule: string; start: number; end: number }[] = [];
  for (const { name, pattern } of SHAPE_RULES) {
    for (const m of text.matchAll(pattern)) {
      if (!m.some((part) => /\d/.test(part ?? '')) || DOCUMENTED_EXAMPLES.has(m[0])) continue;
      found.push({ rule: name, start: m.index, end: m.index + m[0].length });
    }
  }
  return found;
}

const shape = (name: string, pattern: RegExp): ShapeRule => ({ name, pattern });

/** Example values printed in vendors' own documentation (kubeadm's `abcdef.0123456789abcdef`), matched as the rule sees them. */
const DOCUMENTED_EXAMPLES = new Set(['.0123456789abcdef']);

/** `scheme://user:password@host`, any scheme and any password (an empty user too: `redis://:pw@host`). */
const URL_CREDENTIALS = /\b[a-z][a-z0-9+.-]{1,30}:\/\/([^\s:@/?#"'`<>]{0,256}):([^\s@/"'`<>]{1,256})@(?=[\w[.-])/gi;
/** A regular expression that parses URLs, not a URL: `//([^:]+):([^@]+)@`. */
const REGEX_SYNTAX = /\[\^|\(\?|\\[dswS]|\]\+|\]\*/;

function urlCredentials(line: string): boolean {
  if (!line.includes('://')) return false;
  for (const m of line.matchAll(URL_CREDENTIALS)) {
    const [, user, password] = m as unknown as [string, string, string];
    if (!isPlaceholder(password) && !REGEX_SYNTAX.test(user + password)) return true;
  }
  return false;
}

/** `Authorization: Basic <base64 of user:password>`; the base64 may be short, so it is decoded and checked. */
const BASIC_AUTH = /\bBasic\s+([A-Za-z0-9+/]{4,512}={0,2})(?![A-Za-z0-9+/=])/g;

function basicAuth(line: string): boolean {
  if (!line.includes('Basic')) return false;
  for (const m of line.matchAll(BASIC_AUTH)) {
    const encoded = m[1]!;
    if (encoded.replace(/=+$/, '').length % 4 === 1) continue;
    const decoded = Buffer.from(encoded, 'base64').toString('latin1');
    if (/^[\x20-\x7e]+$/.test(decoded) && /^[^:]*:.+$/.test(decoded)) return true;
  }
  return false;
}

/** `Bearer <token>`, `Token <token>` with a random-looking token. */
const BEARER = /\b(Bearer|Token)\s+([A-Za-z0-9+/=_.~-]{16,512})/g;

/** `curl -u user:password`, `curl --user "user:password"`, `--proxy-user` too. */
const CURL_USER = /\bcurl\b.{0,512}?\s(?:-u|--user|--proxy-user|-U)(?:\s+|=)?(["']?)([^\s"':]{0,256}):([^\s"']{1,256})\1/g;

function curlUser(line: string): boolean {
  if (!line.includes('curl')) return false;
  for (const m of line.matchAll(CURL_USER)) if (!isPlaceholder(m[3]!)) return true;
  return false;
}

/** A quoted run of 32+ token characters with no keyword near it, mixed case and random. */
const QUOTED_TOKEN = /["'`]([A-Za-z0-9+/=_.~-]{32,1024})["'`]/g;

function highEntropyString(line: string): boolean {
  for (const m of line.matchAll(QUOTED_TOKEN)) {
    const value = m[1]!;
    if (/^sha(1|256|384|512)-/.test(value)) continue; // a Subresource Integrity hash (lock files, `integrity`)
    const bits = Math.min(4.5, Math.log2(value.length) - 0.9); // random base62 passes 99% of the time
    if (/[a-z]/.test(value) && /[A-Z]/.test(value) && looksRandom(value, bits)) return true;
  }
  return false;
}

const SHAPE_RULES: readonly ShapeRule[] = [
  // The preset scans access key IDs only together with AWS account IDs, the slowest scan in the set.
  shape('aws-access-key', /\b(AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b/g),
  // Not in the preset.
  shape('google-api-key', /\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/g),
  // The preset's SendGrid pattern allows no `-` in the key id and one in the secret; keys are base64url.
  shape('sendgrid', /\bSG\.[\w-]{16,32}\.[\w-]{16,64}(?![\w-])/g),
  // Not in the preset: account/API key SIDs (the auth token is caught by its name).
  shape('twilio', /\b(AC|SK)[0-9a-f]{32}\b/g),
  // Not in the preset: `key-<32 hex>` and `<32 hex>-<8 hex>-<8 hex>` API keys.
  shape('mailgun', /\bkey-[0-9a-f]{32}\b/g),
  shape('mailgun', /\b[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8}\b/g),
  // Not in the preset: webhook URLs (id and token) and bot tokens.
  shape('discord', /(discord(app)?\.com\/api\/webhooks\/\d{17,20}\/[\w-]{60,68}|\b[MNO][A-Za-z\d_-]{23,25}\.[\w-]{6}\.[\w-]{27,38}\b)/g),
  // Not in the preset.
  shape('jwt', /\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/g),
  // Not in the preset: PyPI upload tokens, DigitalOcean tokens.
  shape('pypi-token', /\bpypi-AgEI[A-Za-z0-9_-]{50,}/g),
  shape('digitalocean-token', /\bdo[por]_v1_[a-f0-9]{64}\b/g),
  // Not in the preset: kubeadm bootstrap tokens `[a-z0-9]{6}.[a-z0-9]{16}`.
  shape('bootstrap-token', /(?<=(?<![\w.-])([a-z0-9]{6}))\.[a-z0-9]{16}(?![\w.-])/g), // anchored on the dot: fast
  // Not in the preset: a base64-encoded PEM (`-----BEGIN`), PuTTY key or OpenSSH key body (each holds a digit).
  shape('encoded-private-key', /LS0tLS1CRUdJTi|UHVUVFktVXNlci1LZXktRmlsZS|b3BlbnNzaC1rZXktdjE/g),
];

export const LINE_RULES: readonly LineRule[] = [
  // The preset's basicauth rule takes http(s)/ftp with [-\w] passwords only, its database rules three schemes.
  { name: 'url-credentials', test: urlCredentials },
  // The preset's basicauth rule looks at URLs only, not headers.
  { name: 'basic-auth-header', test: basicAuth },
  // Not in the preset.
  { name: 'curl-user', test: curlUser },
];

/** Rules for nameless random values, tried after the named ones (assignments.ts) so those name the line. */
export const FALLBACK_RULES: readonly LineRule[] = [
  // Not in the preset.
  { name: 'bearer-token', test: (line) => [...line.matchAll(BEARER)].some((m) => looksRandom(m[2]!)) },
  // Not in the preset: a random token with no vendor prefix and no name.
  { name: 'high-entropy-string', test: highEntropyString },
];
