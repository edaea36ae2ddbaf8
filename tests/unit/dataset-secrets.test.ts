import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIdentifierLike, lineSecret, looksLikeKeyMaterial, looksRandom, scrubSecrets, shannonEntropy, vendorRuleNames } from '../../server/src/dataset/secrets';
import { plantedSecrets } from '../fixtures/planted-secrets';
import { seededRandom } from '../helpers/random';

test('every planted secret class is scrubbed (fresh random values), its ordinary lines kept', () => {
  for (let round = 0; round < 50; round++) {
    const { seed, files } = plantedSecrets();
    for (const f of files) {
      for (const options of [{ path: f.path }, {}]) {
        const where = `${f.path} (${options.path === undefined ? 'no path' : 'path'}, seed ${seed})`;
        const result = scrubSecrets(f.text, options);
        for (const secret of f.secrets) assert.ok(!result.text.includes(secret), `${where}: ${JSON.stringify(secret)} survived in\n${result.text}`);
        const lines = result.text.split('\n');
        for (const line of f.kept) assert.ok(lines.includes(line), `${where}: ordinary line blanked: ${line}`);
        assert.equal(lines.length, f.text.split('\n').length, where);
        const counted = Object.values(result.byKind).reduce<number>((a, b) => a + (b ?? 0), 0);
        assert.equal(counted, result.lines.length, `${where}: each blanked line counted once`);
      }
    }
  }
});

test('each class is found by the rule meant for it', () => {
  const d = seededRandom(11);
  const r = (alphabet: string, n: number) => Array.from({ length: n }, () => alphabet[Math.floor(d() * alphabet.length)]).join('');
  const az = 'abcdefghijklmnopqrstuvwxyz';
  const an = `${az}${az.toUpperCase()}0123456789`;
  const hex = '0123456789abcdef';
  const cases: [string, string, string?][] = [
    [`const db = "postgres://admin:${r(az, 12)}@db.internal/app";`, 'secretlint/database-connection-string'],
    [`url: "amqp://guest:${r(az, 9)}!#@mq.internal/"`, 'url-credentials'],
    [`REDIS_URL=redis://:${r(an, 16)}@cache:6379`, 'url-credentials'],
    [`  password: "${r(an, 10)}!#x"`, 'password-assignment'],
    [`      POSTGRES_PASSWORD: ${r(an, 12)}`, 'password-assignment', 'docker-compose.yml'],
    [`export const JWT_SIGNING = "${r(hex, 63)}a";`, 'keyed-secret'],
    [`machine api.example.com login bot password ${r(an, 12)}`, 'netrc'],
    [`curl -u admin:${r(an, 10)} https://api.example.com`, 'curl-user'],
    [`-H "Authorization: Basic ${Buffer.from(`u:${r(an, 6)}`).toString('base64')}"`, 'basic-auth-header'],
    [`kubeadm join 10.0.0.1:6443 --token ${r(az, 5)}1.${r(az, 15)}2`, 'bootstrap-token'],
    [`  tls.key: ${Buffer.from('-----BEGIN PRIVATE KEY-----\nabc\n').toString('base64')}`, 'encoded-private-key'],
    [`  sendgrid: SG.${r(an, 22)}.${r(an, 43)}`, 'secretlint/sendgrid'],
    [`sid = "AC${r(hex, 31)}1"`, 'twilio'],
    [`mg = "key-${r(hex, 31)}1"`, 'mailgun'],
    [`hook = "https://discord.com/api/webhooks/${r('0123456789', 18)}/${r(an, 68)}"`, 'discord'],
    [`const key = "AIza${r(an, 34)}1";`, 'google-api-key'],
    [`token: ghp_${r(an, 35)}1`, 'secretlint/github'],
    [`const t = "xoxb-1234567890-${r(an, 20)}";`, 'secretlint/slack'],
    [`const id = "AKIA${r('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 15)}7";`, 'aws-access-key'],
    ['request.setHeader("Authorization", "Bearer Zk8xP2mQ9vL4tR7wY3nB6hJ1");', 'bearer-token'],
    ['fetch(url, { headers: { Authorization: "Bearer Zk8xP2mQ9vL4tR7wY3nB6hJ1" } })', 'bearer-token'],
    ['const blob = "Zk8xP2mQ9vL4tR7wY3nB6hJ1Ab5Cd7Ef";', 'high-entropy-string'],
    [`<password>${r(an, 10)}#</password>`, 'password-assignment'],
    [`mysqladmin --password=${r(an, 10)} status`, 'password-assignment'],
    ["const password = 'correcthorsebatterystaple';", 'password-assignment'],
    [`docker login -u ci -p ${r(an, 12)} ghcr.io`, 'command-password'],
    [`mysql -uroot -p${r(an, 10)} app`, 'command-password'],
    [`echo "//registry.npmjs.org/:_authToken=${r(hex, 8)}-${r(hex, 4)}-${r(hex, 4)}-${r(hex, 4)}-${r(hex, 12)}" > ~/.npmrc`, 'npm-auth-token'],
    [`"Server=db;User Id=sa;Password=${r(an, 12)};"`, 'connection-string'],
    [`const dsn = "app:${r(an, 12)}@tcp(db:3306)/app";`, 'url-credentials'],
    [`docker run -e DB_PASSWORD=${r(an, 12)} app`, 'password-assignment', 'docs/run.md'],
    [`props.setProperty("password", "${r(an, 12)}");`, 'password-assignment', 'src/Db.java'],
    [`const KEY = Buffer.from("${r(hex, 39)}a", "hex");`, 'keyed-secret', 'src/key.ts'],
  ];
  for (const [line, rule, path] of cases) assert.equal(lineSecret(line, { path }), rule, line);
});

test('ordinary code is left alone: identifiers, types, paths, hashes without a name, uuids, labels, references', () => {
  const lines = [
    'const tokenizer = Tokenizer.load(dir);',
    "const tokenizerPath = join(dir, 'tokenizer.json');",
    '{ label: "qwen2", config: TINY_QWEN2, tokenizerSize: TINY_QWEN2.vocabSize - 10 },',
    '// Node names are hierarchical (`/model/layers.0/attn/q_proj/MatMul`);',
    'export type AuthFlow = AuthenticationFactorV2 | FlowSignInContinuationRequiredResultV2;',
    'const commit = "3f786850e387550fdab836ed7e6dc881de23001b";',
    'const id = "123e4567-e89b-12d3-a456-426614174000";',
    'credentials = standard_b64encode(credentials).decode("ascii")',
    "const passwordField = document.querySelector('#password');",
    'keyboard.on("keydown", handleKeyDownEventForEditor);',
    '  password: string;',
    'password = request.form["password"]',
    'self.password = password',
    'const token = this.scanner.nextToken();',
    '{ token: "}", kind: SyntaxKind.CloseBraceToken }',
    'password: ${DB_PASSWORD}',
    'DB_PASSWORD=$DB_PASSWORD',
    '"password": { "type": "string", "format": "password" },',
    'const url = "https://example.com:8080/path";',
    'const re = /(\\w+):\\/\\/([^:]+):([^@]+)@/;',
    'curl -u "$USER:$TOKEN" https://api.example.com',
    '<input type="password" name="password" placeholder="Password">',
    '    "password": "Password",',
    'Basic usage of the API is described below.',
    'key: "user-settings",',
    'const secret = process.env.SESSION_SECRET;',
    'image: postgres@sha256:a3f5e0c2b1d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1',
    "'allPass': 'overEvery',",
    '"integrity": "sha512-q8Zr3vN1kLm0pQ2sT4uV6wX8yZ0aB1cD3eF5gH7iJ9kL1mN3oP5qR7sT9uV1wX3yZ5aB7cD9eF1gH3iJ5kL7mN==",',
    '# kubeadm documents its token format with abcdef.0123456789abcdef',
    'const password = getPassword();',
    'conn = connect(password=password, user=user)',
    'PASSWORD_MIN_LENGTH=8',
    'if [ -z "$DB_PASSWORD" ]; then DB_PASSWORD=$(cat /run/secrets/db); fi',
    'docker login -u "$USER" -p "$DOCKER_PASSWORD" ghcr.io',
    'mysql -u root -p app < dump.sql',
    'const token = process.env.TOKEN || "";',
    'el.setAttribute("type", "password");',
    "t('password', 'Enter your password')",
    '    "password": "Enter your password",',
    '| `password` | `string` | The password to log in with. |',
    'The password is `undefined` until login.',
    '  password:',
    '    minLength: 8',
  ];
  for (const line of lines) assert.equal(lineSecret(line), undefined, line);
  assert.equal(lineSecret('  password: string', { path: 'src/types.ts' }), undefined);
  assert.equal(lineSecret('pass: through', { path: 'config/router.yaml' }), undefined);
  assert.equal(scrubSecrets('auth:\n  password:\n    minLength: 8\n', { path: 'schema.yaml' }).lines.length, 0);
  assert.equal(scrubSecrets('| Option | Default |\n|---|---|\n| `token` | `null` |\n', { path: 'README.md' }).lines.length, 0);
});

test('a service-account key file is blanked whole, whatever its name', () => {
  const key = ['-----BEGIN PRIVATE KEY-----', 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC', '-----END PRIVATE KEY-----', ''].join('\\n');
  const json = `{\n  "type": "service_account",\n  "project_id": "demo",\n  "private_key_id": "k1",\n  "private_key": "${key}",\n  "client_email": "ci@demo.iam.gserviceaccount.com"\n}\n`;
  const result = scrubSecrets(json, { path: 'deploy/ci.json' });
  assert.equal(result.text.trim(), '');
  assert.equal(result.byKind['secretlint/gcp'], 7);
});

test('secretlint preset rules are in use, without its comment filter', () => {
  const names = vendorRuleNames();
  for (const n of ['secretlint/aws', 'secretlint/github', 'secretlint/sendgrid', 'secretlint/privatekey']) assert.ok(names.includes(n), n);
  assert.ok(!names.some((n) => n.includes('filter-comments')));
  // A `secretlint-disable` comment in a workspace file does not switch detection off.
  const text = `// secretlint-disable\nconst gh = "ghp_${'aB3'.repeat(12)}";\n`;
  assert.deepEqual(scrubSecrets(text).lines, [2]);
});

test('random credentials of 20+ characters are seen as random 99% of the time; names are not', () => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const rand = seededRandom(7);
  let hits = 0;
  for (let i = 0; i < 2000; i++) {
    const value = Array.from({ length: 24 }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
    if (looksRandom(value)) hits++;
  }
  assert.ok(hits >= 1980, `${hits}/2000`);
  assert.ok(isIdentifierLike('urllib3.exceptions.MaxRetryError'));
  assert.ok(!isIdentifierLike('q8Z3xLw9Vt2Rk7Pm4Hs6Jd1Fb5Nc0Ye'));
  assert.ok(Math.abs(shannonEntropy('abcd') - 2) < 1e-12);
  assert.equal(shannonEntropy('aaaa'), 0);
  assert.ok(looksLikeKeyMaterial('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'));
  assert.ok(!looksLikeKeyMaterial('0000000000000000000000000000000000000000'));
});

test('scrubbing blanks whole lines, keeps line breaks (CRLF too) and blanks private-key blocks entire', () => {
  const text = [
    'import os',
    `KEY = "AKIA${'ABCDEFGH'.repeat(2).slice(0, 15)}7"`,
    'PEM = """',
    '-----BEGIN EC PRIVATE KEY-----',
    'MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oGk0sNdqZpVboAoGCCqGSM49',
    'AwEHoUQDQgAE7ZP0VJKqL+I1H7Fo2DtRmBfXpRP8wuqY1oXkUo4VZ4rk=',
    '-----END EC PRIVATE KEY-----',
    '"""',
    'print(os.name)',
    '',
  ].join('\r\n');
  const result = scrubSecrets(text);
  assert.deepEqual(result.lines, [2, 4, 5, 6, 7]);
  assert.deepEqual(result.byKind, { 'aws-access-key': 1, 'private-key': 4 });
  assert.equal(result.text, ['import os', '', 'PEM = """', '', '', '', '', '"""', 'print(os.name)', ''].join('\r\n'));
});

test('an unterminated private key blanks to the end of the file; a clean text is unchanged', () => {
  const result = scrubSecrets('a = 1\n-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n');
  assert.equal(result.text, 'a = 1\n\n\n\n');
  assert.deepEqual(result.lines, [2, 3, 4]);
  assert.deepEqual(scrubSecrets('nothing here\n'), { text: 'nothing here\n', lines: [], byKind: {} });
});

test('a long line without secrets costs linear time', () => {
  const line = `${'password = a.b.c, token: x; curl -H '.repeat(40_000)}\n`; // 1.5 MB; a quadratic rule takes minutes
  const started = performance.now();
  scrubSecrets(line);
  assert.ok(performance.now() - started < 10_000);
});
