// Kiln's rules for secrets bound to a name by position rather than by `=` or `:`: a call whose
// first argument names the secret (`setProperty("password", "…")`, `getenv("DB_PASSWORD", "…")`,
// `headers.set('x-api-key', '…')`), an environment variable's literal default
// (`process.env.API_TOKEN || "…"`, `ENV['API_TOKEN'] ||= '…'`), HTTP basic-auth pairs, and prose
// that states one ("The password is `…`."). The preset has no rule for any of them.
import { classifyName, isSecretValue, isWeakName } from './assignments';
import { isIdentifierLike } from './entropy';
import type { ValueContext } from './assignments';

/**
 * `set…("name", "value"`: a setter, getter or lookup called with a quoted secret-like name, then a
 * quoted literal. Other calls (`scrypt('password', 'salt')`) take a name as plain data.
 */
const NAMED_ARGUMENT = /\b(?:set|get|put|add|append|fetch|header|with|option|param|field|env|config|define)\w*\s*\(\s*(["'])([\w.-]{2,80})\1\s*,\s*(["'])((?:(?!\3).){1,512})\3/gi;
/** An environment lookup of a name, then `||`, `??`, `||=`, `or`, `?:` and a quoted literal. */
const ENV_DEFAULT =
  /(?:process\.env\.([A-Za-z_]\w*)|(?:process\.env|ENV|os\.environ|environ)\[\s*["']([\w.-]+)["']\s*\]|(?:getenv|environ\.get|env\.get|ENV\.fetch|Getenv|getProperty)\(\s*["']([\w.-]+)["']\s*\))\s*(?:\|\|=?|\?\?=?|\bor\b|\?:)\s*(["'`])((?:(?!\4).){1,512})\4/g;
/** `HTTPBasicAuth("user", "pw")`, `auth=("user", "pw")`, `.basicAuth('user', 'pw')`, `BasicAuth(…)`. */
const AUTH_PAIR =
  /(?:\b(?:HTTPBasicAuth|HTTPDigestAuth|HTTPProxyAuth|BasicAuth|basic_auth|basicAuth|setBasicAuth)\s*|\bauth\s*=\s*)\(\s*(["'])[^"']{0,256}\1\s*,\s*(["'])((?:(?!\2).){1,256})\2/g;
/** "The password is `…`", "token: **…**": a stated value in documents and comments. */
const STATED = /\b(password|passphrase|passwd|secret|token|api[ _-]?key)\s+(?:is|was|=|:)\s+(?:`([^`\s]{3,256})`|"([^"\s]{3,256})"|\*\*([^*\s]{3,256})\*\*)/gi;

type Rule = 'password-assignment' | 'keyed-secret';
const RULE_NAMES = { password: 'password-assignment', key: 'keyed-secret' } as const;

/** Whether `value`, bound to `name` by position, is a secret (spaced or camelCase values are labels and keys there). */
function boundSecret(name: string, value: string, context: ValueContext): Rule | undefined {
  const cls = classifyName(name);
  // A camelCase, snake_case or dotted identifier there is a field or key name (`field("password", "password_confirmation")`).
  if (cls === undefined || /\s/.test(value) || (/^[a-z]+[A-Z]|[_.]/.test(value) && isIdentifierLike(value))) return undefined;
  const site = { parsed: { value, quoted: true, rest: '' }, context, wholeLine: false, weakName: isWeakName(name) };
  return isSecretValue(cls, site) ? RULE_NAMES[cls] : undefined;
}

/** The rule name when a secret is bound to its name by position on this line. */
export function positionalSecret(line: string, context: ValueContext): Rule | undefined {
  if (line.includes('(')) {
    for (const m of line.matchAll(NAMED_ARGUMENT)) {
      const rule = boundSecret(m[2]!, m[4]!, context);
      if (rule !== undefined) return rule;
    }
    for (const m of line.matchAll(AUTH_PAIR)) {
      const rule = boundSecret('password', m[3]!, context);
      if (rule !== undefined) return rule;
    }
  }
  if (/env|ENV|getProperty/.test(line)) {
    for (const m of line.matchAll(ENV_DEFAULT)) {
      const rule = boundSecret(m[1] ?? m[2] ?? m[3]!, m[5]!, context);
      if (rule !== undefined) return rule;
    }
  }
  if (!/pass|secret|token|key/i.test(line)) return undefined;
  for (const m of line.matchAll(STATED)) {
    const rule = boundSecret(m[1]!.replace(/\s/g, '_'), m[2] ?? m[3] ?? m[4]!, context);
    if (rule !== undefined) return rule;
  }
  return undefined;
}
