import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIdentifierLike, lineSecret, looksRandom, scrubSecrets, shannonEntropy } from '../../server/src/dataset/secrets';
import { seededRandom } from '../helpers/random';

test('each secret rule fires on its shape', () => {
  const cases: [string, string][] = [
    ['const awsKey = "AKIAIOSFODNN7EXAMPLE";', 'aws-access-key'],
    ['aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'aws-secret-key'],
    [`token: ghp_${'aB3'.repeat(12)}`, 'github-token'],
    [`const pat = "github_pat_11ABCDEFG0${'x1Y'.repeat(10)}";`, 'github-token'],
    ['SLACK = "xoxb-123456789012-abcdefABCDEF"', 'slack-token'],
    ['const key = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q";', 'known-token'],
    ['stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"', 'known-token'],
    ['OPENAI_API_KEY="sk-proj-Ab12Cd34Ef56Gh78Ij90Kl"', 'known-token'],
    ['const db = "postgres://admin:hunter2pass@db.internal:5432/app";', 'url-credentials'],
    ['const apiToken = "q8Z3xLw9Vt2Rk7Pm4Hs6Jd1Fb5Nc0Ye";', 'assigned-secret'],
    ['  "password": "Zx9kQ2mV7pL4wR8s"', 'assigned-secret'],
    ['api_secret: 7fG2kLp9QwX4vB8nZ3rT', 'assigned-secret'],
    ['fetch(url, { headers: { Authorization: "Bearer Zk8xP2mQ9vL4tR7wY3nB6hJ1" } })', 'assigned-secret'],
    ['const blob = "Zk8xP2mQ9vL4tR7wY3nB6hJ1Ab5Cd7Ef";', 'high-entropy-string'],
  ];
  for (const [line, kind] of cases) assert.equal(lineSecret(line), kind, line);
});

test('ordinary code is left alone: identifiers, paths, hashes without a keyword, uuids, words', () => {
  const lines = [
    'const tokenizer = Tokenizer.load(dir);',
    "const tokenizerPath = join(dir, 'tokenizer.json');",
    '{ label: "qwen2", config: TINY_QWEN2, tokenizerSize: TINY_QWEN2.vocabSize - 10 },',
    '// Node names are hierarchical (`/model/layers.0/attn/q_proj/MatMul`);',
    'export type AuthFlow = AuthenticationFactorV2 | FlowSignInContinuationRequiredResultV2;',
    'const commit = "3f786850e387550fdab836ed7e6dc881de23001b";',
    'const id = "123e4567-e89b-12d3-a456-426614174000";',
    'const password = "correcthorsebatterystaple";',
    'credentials = standard_b64encode(credentials).decode("ascii")',
    "const passwordField = document.querySelector('#password');",
    'keyboard.on("keydown", handleKeyDownEventForEditor);',
  ];
  for (const line of lines) assert.equal(lineSecret(line), undefined, line);
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
});

test('scrubbing blanks whole lines, keeps line breaks (CRLF too) and blanks private-key blocks entire', () => {
  const text = [
    'import os',
    'KEY = "AKIAIOSFODNN7EXAMPLE"',
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
  assert.equal(result.text.split('\r\n').length, text.split('\r\n').length);
});

test('an unterminated private key blanks to the end of the file', () => {
  const result = scrubSecrets('a = 1\n-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n');
  assert.equal(result.text, 'a = 1\n\n\n\n');
  assert.deepEqual(scrubSecrets('nothing here\n'), { text: 'nothing here\n', lines: [], byKind: {} });
});
