// Download presets: sizes computed from the published shapes agree with the parameter counts the
// model cards publish, memory follows the precision, the unsupported StarCoder2 preset is refused
// before any download with its reason, and `kiln model download --list-presets` lists them all.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runModelDownload } from '../../server/src/commands/model-download';
import { PRESET_LATENCY } from '../../server/src/model/download/preset-latency';
import { describePreset, findPreset, MODEL_PRESETS, presetSizes } from '../../server/src/model/download/presets';

// The sizes the model cards publish ("Number of Parameters"), in billions
const PUBLISHED_BILLIONS: Record<string, number> = {
  'qwen2.5-coder-0.5b': 0.49,
  'qwen2.5-coder-1.5b': 1.54,
  'qwen2.5-coder-3b': 3.09,
  'deepseek-coder-1.3b-base': 1.35,
  'starcoder2-3b': 3.03,
};

describe('model presets', () => {
  it('offer the five models of issue 14, each with a repository id', () => {
    assert.deepEqual(
      MODEL_PRESETS.map((p) => p.id),
      Object.keys(PUBLISHED_BILLIONS),
    );
    for (const p of MODEL_PRESETS) assert.match(p.repo, /^[\w.-]+\/[\w.-]+$/);
  });

  it('parameters from the published shapes are within 2% of the published counts; memory follows the precision', () => {
    for (const p of MODEL_PRESETS) {
      const s = presetSizes(p);
      const published = PUBLISHED_BILLIONS[p.id]! * 1e9;
      assert.ok(Math.abs(s.parameters - published) / published < 0.02, `${p.id}: ${s.parameters} vs ${published}`);
      assert.equal(s.downloadBytes, 2 * s.parameters, 'BF16 weights');
      const m = s.memoryBytes;
      assert.ok(m.int4 < m.int8 && m.int8 < m.fp16 && m.fp16 < m.fp32, `${p.id}: ${JSON.stringify(m)}`);
      assert.ok(m.fp32 > 4 * s.parameters && m.fp32 < 4 * s.parameters + s.kvBytes + 1e8, `${p.id}: fp32 is about 4 bytes per parameter plus the KV`);
    }
    // the 0.5B's int8 graph: 0.84 GB on disk with MatMulNBits blocks (issue 14); MatMulInteger's per-channel
    // codes hold 1 byte a weight, so ~0.77 GB (graph-cache.test.ts checks the formula against built graphs)
    const q05 = presetSizes(findPreset('qwen2.5-coder-0.5b')!);
    assert.ok(Math.abs(q05.memoryBytes.int8 - q05.kvBytes - 0.77e9) < 0.03e9, `${q05.memoryBytes.int8 - q05.kvBytes}`);
  });

  it('describe latency from the one table, or say it was not measured', () => {
    for (const p of MODEL_PRESETS) {
      const d = describePreset(p);
      if (p.unsupported) assert.match(d.label, /not supported yet/);
      else if (PRESET_LATENCY[p.id]) assert.match(d.detail, /decode ms\/token .*int8 \d+–\d+/);
      else assert.match(d.detail, /not measured yet/);
      if (!p.unsupported) assert.match(d.detail, /RAM ≈ [\d.]+ GB int8/);
    }
  });

  it('are found by id or repository, case-insensitively', () => {
    assert.equal(findPreset('Qwen/Qwen2.5-Coder-1.5B')?.id, 'qwen2.5-coder-1.5b');
    assert.equal(findPreset('STARCODER2-3B')?.repo, 'bigcode/starcoder2-3b');
    assert.equal(findPreset('someone/else'), undefined);
  });
});

describe('kiln model download with presets', () => {
  it('--list-presets lists every preset (text and JSON), without a network', async () => {
    const lines: string[] = [];
    assert.equal(await runModelDownload(['--list-presets'], (t) => lines.push(t)), 0);
    for (const p of MODEL_PRESETS) assert.ok(lines.some((l) => l.startsWith(p.id) && l.includes(p.repo)));
    lines.length = 0;
    assert.equal(await runModelDownload(['--list-presets', '--json'], (t) => lines.push(t)), 0);
    const json = JSON.parse(lines[0]!) as { id: string; sizes: { parameters: number } }[];
    assert.equal(json.length, MODEL_PRESETS.length);
    assert.ok(json.every((p) => p.sizes.parameters > 1e8));
  });

  it('an unsupported preset is refused before anything is fetched, with the reason', async () => {
    // a base URL nothing listens on: a download attempt would fail with a connection error instead
    await assert.rejects(
      runModelDownload(['starcoder2-3b', '--base-url', 'http://127.0.0.1:9', '--dest', '/nonexistent'], () => {}),
      /not supported by Kiln yet/,
    );
    await assert.rejects(
      runModelDownload(['--list-presets', 'x/y'], () => {}),
      /takes no model id/,
    );
  });
});
