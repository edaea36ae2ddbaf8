// Kiln's rules for credentials that no `name = value` carries: command-line password flags whose
// meaning depends on the command (`-p` is a port elsewhere), connection strings of `Key=value;`
// pairs, Go DSNs and npm's `:_authToken=`. secretlint's preset has none of these shapes.
import { classifyName } from './assignments';
import { looksLikeKeyMaterial, looksRandom } from './entropy';
import { isExpression, isPlaceholder } from './values';
import type { LineRule } from './line-rules';

/** A value that names or computes the secret rather than holding it: `$PW`, `"$(cat pw)"`, `${{ secrets.X }}`. */
function isReference(value: string): boolean {
  return isPlaceholder(value) || /^[${<]|^%\w+%$/.test(value);
}

/** `-p <pw>` / `--password <pw>` of registry logins, `-p<pw>` of the MySQL clients, `sshpass -p`. */
const COMMAND_PASSWORDS: readonly RegExp[] = [
  /\b(?:docker|podman|buildah|skopeo|helm|nerdctl|oras|crane)\b(?:\s+registry)?\s+login\b.{0,300}?\s(?:-p|--password)(?:\s+|=)(["']?)([^\s"']+)\1/g,
  /\bmysql(?:dump|admin|import|sh|slap|check)?\b.{0,300}?\s-p(["']?)([^\s"']+)\1/g,
  /\bsshpass\b.{0,300}?\s-p\s*(["']?)([^\s"']+)\1/g,
  // Redis: `requirepass <pw>` in redis.conf, `--requirepass <pw>`, `["--requirepass", "<pw>"]`.
  /\b(?:requirepass|masterauth)\b["']?(?:\s*,\s*|\s+)(["']?)([^\s"',\]]+)\1/g,
  // `echo <pw> | docker login … --password-stdin`.
  /\becho\s+(["']?)([^\s"'|$]+)\1\s*\|\s*(?:docker|podman|buildah|skopeo|helm|nerdctl|oras)\b.{0,300}--password-stdin/g,
];

function commandPassword(line: string): boolean {
  if (!/login|mysql|sshpass|requirepass|masterauth/.test(line)) return false;
  return COMMAND_PASSWORDS.some((re) => [...line.matchAll(re)].some((m) => !isReference(m[2]!)));
}

/** npm's registry credentials, `//registry/:_authToken=<token>` (often a UUID, echoed into ~/.npmrc). */
const NPM_AUTH = /:_(?:authToken|auth|password)\s*=\s*["']?([^\s"']+)/g;

function npmAuth(line: string): boolean {
  return line.includes(':_') && [...line.matchAll(NPM_AUTH)].some((m) => !isReference(m[1]!));
}

/** Go's MySQL DSN `user:pw@tcp(host)/db` (no scheme, so url-credentials never sees it). */
const GO_DSN = /(?:^|["'`\s])[\w.-]{0,64}:([^@\s"'`]{1,256})@(?:tcp|udp|unix)\(/g;

function goDsn(line: string): boolean {
  return line.includes('@') && [...line.matchAll(GO_DSN)].some((m) => !isReference(m[1]!));
}

/**
 * A `Key=value` pair of a connection string: ADO.NET/ODBC/Npgsql (`;Password=…;`), Azure
 * (`;AccountKey=…`, `;SharedAccessKey=…`), JDBC and URL query parameters (`?user=app&password=…`).
 * The pair must touch a `;`, `?` or `&`, which ordinary assignments lack.
 */
const CONNECTION_PAIR = /(?<=[;?&"'`])([A-Za-z]\w*(?: [A-Za-z]\w*){0,2})=([^;&"'`\s]{1,512})(?=$|[;&"'`])/g;

function connectionString(line: string): boolean {
  if (!/[;?&]/.test(line) || !line.includes('=')) return false;
  for (const m of line.matchAll(CONNECTION_PAIR)) {
    const before = line[m.index - 1] ?? '';
    const after = line[m.index + m[0].length] ?? '';
    if (!/[;?&]/.test(before) && !/[;&]/.test(after)) continue;
    const cls = classifyName(m[1]!);
    const value = m[2]!.trim();
    if (cls === undefined || isReference(value) || isExpression(value, '')) continue;
    if (cls === 'key' ? looksRandom(value) || looksLikeKeyMaterial(value) : value.length >= 3 && !/^[A-Za-z_$][\w$]{0,2}$/.test(value)) return true;
  }
  return false;
}

export const COMMAND_RULES: readonly LineRule[] = [
  { name: 'command-password', test: commandPassword },
  { name: 'npm-auth-token', test: npmAuth },
  { name: 'url-credentials', test: goDsn },
  { name: 'connection-string', test: connectionString },
];
