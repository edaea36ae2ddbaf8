// The built CLI (`node dist/cli.js`) on a seeded tiny checkpoint: `model info` and `model logprobs`
// outputs checked against the checkpoint and the independent reference forward pass, concurrent
// processes sharing one graph cache, and the exit codes: 2 with the usage for bad flags, 1 with a
// one-line message for a bad model or token.
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LogprobsDocument } from '../../server/src/commands/model-logprobs';
import { type CliRun as Run, ensureBuilt, runKiln as kiln } from '../helpers/built-cli';
import { logSoftmax, referenceForward } from '../helpers/reference-forward';
import { makeTinyWeights, TINY_LLAMA_GQA, writeTinyCheckpoint } from '../helpers/tiny-model';
import { maxAbsDiff, tempDir } from '../helpers/tiny-session';

const TOKENS = [1, 17, 200, 3, 42, 299, 0];

const root = tempDir('kiln-cli-');
const modelDir = join(root, 'model');
const cacheDir = join(root, 'cache');
const weights = makeTinyWeights(TINY_LLAMA_GQA, 9);
after(() => rmSync(root, { recursive: true, force: true }));

before(() => {
  ensureBuilt();
  writeTinyCheckpoint(modelDir, weights);
});
const onCpu = ['--ep', 'cpu', '--threads', '1', '--cache', cacheDir];

function assertOneLineFailure(r: Run, prefix: string, problem: RegExp): void {
  assert.equal(r.code, 1, `exit code 1, stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.ok(lines[0]!.startsWith(prefix), lines[0]);
  assert.match(lines[0]!, problem);
  assert.equal(r.stdout, '');
}

describe('kiln model info', () => {
  it('--json reports the config, the parameter count and the provider', async () => {
    const r = await kiln('model', 'info', modelDir, '--json', ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    const parameters = [...weights.tensors.values()].reduce((sum, t) => sum + t.length, 0);
    assert.equal(info.dir, modelDir);
    assert.deepEqual(info.config, JSON.parse(JSON.stringify(TINY_LLAMA_GQA)));
    assert.equal(info.parameters, parameters);
    assert.equal(info.checkpointWeightBytes, parameters * 4);
    assert.deepEqual(info.checkpointDtypes, ['F32']);
    assert.ok((info.loadedWeightBytes as number) >= parameters * 4);
    assert.equal(info.executionProvider, 'cpu');
    assert.deepEqual(info.providerAttempts, []);
    assert.equal(typeof info.graphCacheHit, 'boolean');
  });

  it('without --json prints a summary', async () => {
    const r = await kiln('model', 'info', modelDir, ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^model {8}.+ \(llama\)$/m);
    assert.match(r.stdout, /^shape {8}d=64 layers=2 heads=4 kv_heads=2 head_dim=16 mlp=96 vocab=300$/m);
    assert.match(r.stdout, /^provider {5}cpu$/m);
  });
});

describe('kiln model logprobs', () => {
  const expected = referenceForward(weights, TOKENS).map(logSoftmax);

  function checkDocument(doc: LogprobsDocument): void {
    assert.equal(doc.format, 'logprobs-v1');
    assert.equal(doc.source, 'kiln');
    assert.equal(doc.n_tokens, TOKENS.length);
    assert.equal(doc.n_vocab, TINY_LLAMA_GQA.vocabSize);
    assert.deepEqual(doc.tokens, TOKENS);
    assert.equal(doc.logprobs.length, TOKENS.length);
    doc.logprobs.forEach((row, t) => {
      assert.equal(row.length, TINY_LLAMA_GQA.vocabSize);
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      assert.ok(Math.abs(lse) <= 1e-9, `row ${t} logsumexp = ${lse}`);
      const diff = maxAbsDiff(row, expected[t]!);
      assert.ok(diff <= 1e-4, `row ${t}: max abs diff to the reference ${diff}`);
    });
  }

  it('prints a logprobs-v1 document matching the reference forward pass', async () => {
    const r = await kiln('model', 'logprobs', modelDir, '--tokens', TOKENS.join(','), ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    checkDocument(JSON.parse(r.stdout) as LogprobsDocument);
  });

  it('--out writes the same document to a file and nothing to stdout', async () => {
    const out = join(root, 'logprobs.json');
    const r = await kiln('model', 'logprobs', modelDir, '--tokens', TOKENS.join(', '), '--out', out, '--attention', 'plain', ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    checkDocument(JSON.parse(readFileSync(out, 'utf8')) as LogprobsDocument);
  });

  it('processes building the same graph into one empty cache at once all succeed, leaving one build', async () => {
    // two editor windows or two `kiln complete` runs on a fresh install race to publish the same folder
    const freshCache = join(root, 'shared-cache');
    const runs = await Promise.all(
      Array.from({ length: 4 }, () => kiln('model', 'logprobs', modelDir, '--tokens', TOKENS.join(','), '--ep', 'cpu', '--threads', '1', '--cache', freshCache)),
    );
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      checkDocument(JSON.parse(r.stdout) as LogprobsDocument);
    }
    assert.equal(readdirSync(join(freshCache, 'graphs')).length, 1, 'one build folder, no temporary or stale folder left');
  });

  it('an out-of-vocabulary token id exits 1 with a one-line message', async () => {
    const r = await kiln('model', 'logprobs', modelDir, '--tokens', '1,300', ...onCpu);
    assertOneLineFailure(r, 'kiln model logprobs: ', /token id 300 is outside the vocabulary \(0\.\.299\)/);
  });
});

describe('kiln exit codes', () => {
  const USAGE_ERRORS: [string, string[], RegExp][] = [
    ['an unknown flag', ['model', 'info', modelDir, '--bogus'], /Unknown option '--bogus'/],
    ['a bad --ep value', ['model', 'info', modelDir, '--ep', 'gpu'], /--ep must be one of auto, cpu, webgpu, cuda, got "gpu"/],
    ['a bad --attention value', ['model', 'logprobs', modelDir, '--tokens', '1', '--attention', 'flash'], /--attention must be fused or plain/],
    ['no model folder', ['model', 'info', '--json'], /expected one model folder/],
    ['no --tokens', ['model', 'logprobs', modelDir], /--tokens is required/],
    ['an empty item in --tokens', ['model', 'logprobs', modelDir, '--tokens', '1,,2'], /--tokens must be comma-separated non-negative integers, got "1,,2"/],
    ['a negative token', ['model', 'logprobs', modelDir, '--tokens', '1,-2'], /--tokens must be comma-separated non-negative integers/],
  ];
  let runs: Promise<Run>[];
  before(() => (runs = USAGE_ERRORS.map(([, args]) => kiln(...args)))); // at once: none loads a model
  USAGE_ERRORS.forEach(([label, args, problem], i) => {
    it(`${label}: exit 2 with the command's usage`, async () => {
      const r = await runs[i]!;
      assert.equal(r.code, 2, r.stderr);
      const command = `${args[0]} ${args[1]}`;
      assert.ok(r.stderr.startsWith(`kiln ${command}: `), r.stderr);
      assert.match(r.stderr, problem);
      assert.match(r.stderr, new RegExp(`^usage: kiln ${command} <model-dir>`, 'm'));
      assert.equal(r.stdout, '');
    });
  });

  it('an unknown command: exit 2 with the overall usage', async () => {
    const r = await kiln('model', 'train');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^unknown command "model train"\nusage: kiln <command>/);
  });

  it('a corrupt model: exit 1 with one line naming the file', async () => {
    const broken = join(root, 'broken');
    cpSync(modelDir, broken, { recursive: true });
    truncateSync(join(broken, 'model.safetensors'), 1000);
    const file = join(broken, 'model.safetensors');
    const problem = new RegExp(`${file.replace(/[.\\/]/g, '\\$&')}: truncated or corrupt`);
    assertOneLineFailure(await kiln('model', 'info', broken, ...onCpu), 'kiln model info: ', problem);
    assertOneLineFailure(await kiln('model', 'logprobs', broken, '--tokens', '1,2', ...onCpu), 'kiln model logprobs: ', problem);
  });
});
