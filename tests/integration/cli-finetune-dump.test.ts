// `kiln finetune <dir> --dry-run --dump FILE` on a small git repository with planted secrets (fresh
// random values) and a .git/config whose fsmonitor would leave a marker: the dump holds every
// example's decoded text under headers naming split and file; ordinary code is in it, no secret
// is, the fsmonitor never runs, and the report lists blanked lines per rule.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { before, test } from 'node:test';
import { cleanGitEnv } from '../../server/src/dataset/git-files';
import { writeOverfitModel } from '../fixtures/overfit-repo';
import { plantedSecrets } from '../fixtures/planted-secrets';
import { ensureBuilt, runKiln } from '../helpers/built-cli';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-dump-');
const repo = join(root, 'repo');
const modelDir = join(root, 'model');
const ranMarker = join(root, 'fsmonitor-ran');
const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const pick = (n: number, alphabet: string) => Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join('');
const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const UPPER_DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
// Shapes today's rules always catch (letters broken by digits; an AWS key holding a digit): this
// test is about the dump, not the rules' recall, which dataset-secrets tests.
const SECRETS = {
  password: Array.from({ length: 6 }, () => `${pick(3, LETTERS)}${pick(1, '0123456789')}`).join(''),
  awsKey: `AKIA${pick(7, UPPER_DIGITS)}${pick(1, '0123456789')}${pick(8, UPPER_DIGITS)}`,
  envValue: `envsecret_${hex(12)}`,
};
const ORDINARY = ['def compute_total(items):', '    return sum(item.price for item in items)', "export const region = 'eu-west-1';", 'class Inventory:'];

function write(path: string, text: string): void {
  mkdirSync(dirname(join(repo, path)), { recursive: true });
  writeFileSync(join(repo, path), text);
}

before(() => {
  ensureBuilt();
  writeOverfitModel(modelDir);
  write('src/shop.py', `${ORDINARY[0]}\n${ORDINARY[1]}\n\n\n${ORDINARY[3]}\n    def __init__(self):\n        self.items = []\n`);
  write('src/settings.py', `import os\n\nDEBUG = False\npassword = "${SECRETS.password}"\nTIMEOUT = 30\n`);
  write('src/config.ts', `${ORDINARY[2]}\nconst accessKeyId = "${SECRETS.awsKey}";\nexport const retries = 3;\n`);
  write('.env', `DATABASE_PASSWORD=${SECRETS.envValue}\n`);
  for (let i = 0; i < 5; i++) write(`src/part${i}.ts`, `export function part${i}(x: number): number {\n  return x * ${i + 2};\n}\n`);
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, env: cleanGitEnv(), stdio: 'pipe' });
  git('init', '-q');
  git('add', '-A');
  git('commit', '-qm', 'init');
  const program = join(root, 'fsmonitor.sh');
  writeFileSync(program, `#!/bin/sh\necho ran >> '${ranMarker}'\nexit 1\n`);
  chmodSync(program, 0o755);
  git('config', 'core.fsmonitor', program);
});

/** An example's text with its FIM markers undone: prefix + middle + suffix, as the file had it. */
function reassemble(example: string): string {
  const body = example.replace(/<\|endoftext\|>$/, '');
  const m = /^<\|fim_prefix\|>(?<pre>[\s\S]*?)<\|fim_suffix\|>(?<suf>[\s\S]*?)<\|fim_middle\|>(?<mid>[\s\S]*)$/.exec(body);
  if (!m?.groups) return body;
  const { pre, suf, mid } = m.groups as { pre: string; suf: string; mid: string };
  return pre === '' ? `${mid}${suf}` : `${pre}${mid}${suf}`; // SPM puts the prefix after <|fim_middle|>
}

test('--dry-run --dump writes every example, ordinary code in, planted secrets out, fsmonitor never run', async () => {
  const dump = join(root, 'out', 'dump.txt');
  const r = await runKiln('finetune', repo, '--model', modelDir, '--cache', join(root, 'cache'), '--seq-len', '128', '--threads', '1', '--dry-run', '--dump', dump);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(ranMarker), false, 'the workspace fsmonitor ran');
  const text = readFileSync(dump, 'utf8');
  assert.deepEqual(readdirSync(dirname(dump)), ['dump.txt'], 'no temp file left behind');

  const headers = [...text.matchAll(/^═{8} example (\d+) of (\d+) · (train|validation) · (\S+) · (plain|psm|spm) · (\d+) tokens ═{8}$/gm)];
  assert.ok(headers.length > 0, text.slice(0, 400));
  assert.equal(Number(headers[0]![2]), headers.length, 'every example has its header');
  const splits = new Set(headers.map((h) => h[3]));
  assert.deepEqual([...splits].sort(), ['train', 'validation']);
  const files = new Set(headers.map((h) => h[4]));
  for (const f of ['src/shop.py', 'src/settings.py', 'src/config.ts']) assert.ok(files.has(f), f);
  assert.ok(!files.has('.env'));

  // The examples' texts, split at the headers (each followed by one newline that is not its own).
  const bodies = text
    .split(/^═{8} example .*═{8}\n/m)
    .slice(1)
    .map((b) => b.replace(/\n$/, ''));
  assert.equal(bodies.length, headers.length);
  assert.ok(
    bodies.every((b) => b.endsWith('<|endoftext|>')),
    'each example ends with the end token',
  );
  assert.ok(
    bodies.some((b) => b.startsWith('<|fim_prefix|>')),
    'FIM examples are shown with their markers',
  );
  const whole = bodies.map(reassemble).join('\n');
  for (const line of ORDINARY) assert.ok(whole.includes(line), `ordinary line missing: ${line}`);
  for (const [name, secret] of Object.entries(SECRETS)) {
    for (let i = 0; i + 8 <= secret.length; i++) {
      const piece = secret.slice(i, i + 8);
      assert.ok(!text.includes(piece) && !whole.includes(piece), `${name}: fragment ${piece} reached the dump`);
    }
  }
  assert.ok(whole.includes('TIMEOUT = 30'), 'the scrubbed file keeps its other lines');

  // The report names blanked lines per rule in a table, and the dump.
  assert.match(r.stdout, /Secret lines blanked, by rule:\n {2}rule +lines\n(?: {2}\S+ +\d+\n)+/);
  assert.match(r.stdout, /^ {2}aws-access-key +1$/m);
  assert.match(r.stderr, new RegExp(`wrote ${headers.length} examples .* to ${dump.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
});

test('--dump without --dry-run is a usage error', async () => {
  const r = await runKiln('finetune', repo, '--model', modelDir, '--dump', join(root, 'x.txt'));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--dump needs --dry-run/);
});

test('every planted secret class (fresh random values) stays out of the dump of a git workspace', async () => {
  const planted = plantedSecrets();
  const work = join(root, 'planted');
  const put = (path: string, text: string) => {
    mkdirSync(dirname(join(work, path)), { recursive: true });
    writeFileSync(join(work, path), text);
  };
  for (const f of planted.files) put(f.path, f.text);
  for (let i = 0; i < 4; i++) put(`src/helper${i}.ts`, `export function helper${i}(x: number): number {\n  return x + ${i};\n}\n`);
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: work, env: cleanGitEnv(), stdio: 'pipe' });
  git('init', '-q');
  git('add', '-A');
  git('commit', '-qm', 'init');
  const dump = join(root, 'out', 'planted.txt');
  const r = await runKiln('finetune', work, '--model', modelDir, '--cache', join(root, 'cache'), '--seq-len', '128', '--threads', '1', '--dry-run', '--dump', dump);
  assert.equal(r.code, 0, r.stderr);
  const text = readFileSync(dump, 'utf8');
  const whole = text
    .split(/^═{8} example .*═{8}\n/m)
    .slice(1)
    .map((b) => reassemble(b.replace(/\n$/, '')))
    .join('\n');
  assert.ok(whole.includes('return x + 2;'), 'ordinary code is trained on');
  for (const f of planted.files) {
    for (const secret of f.secrets) {
      const size = Math.min(secret.length, 10); // a FIM cut can split a secret; no long piece of it may survive
      for (let i = 0; i + size <= secret.length; i++) {
        const piece = secret.slice(i, i + size);
        assert.ok(!text.includes(piece) && !whole.includes(piece), `seed ${planted.seed}, ${f.path} (${f.classes.join(', ')}): ${piece} reached the dump`);
      }
    }
  }
});
