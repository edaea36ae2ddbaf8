// The PyTorch rows name OpenBLAS's kernels from the CPU's flags (its own detection falls back to SSE3
// kernels on a CPU model it does not know): the flags parsed from /proc/cpuinfo text, the choice per ISA.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuFlags, openblasCoreEnv, openblasCoreFor } from '../bench/openblas-core';

describe('OpenBLAS kernels for the PyTorch rows', () => {
  it('reads the flags line of /proc/cpuinfo text', () => {
    const text = 'processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu sse3 avx2 fma avx512f\nbugs\t\t: spectre_v1\n';
    assert.deepEqual([...cpuFlags(text)], ['fpu', 'sse3', 'avx2', 'fma', 'avx512f']);
    assert.equal(cpuFlags('').size, 0);
  });

  it('AVX-512 (F, BW, DQ, VL): SkylakeX; AVX2 + FMA: Haswell; older or partial: none', () => {
    assert.equal(openblasCoreFor(new Set(['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512dq', 'avx512vl'])), 'SkylakeX');
    assert.equal(openblasCoreFor(new Set(['avx2', 'fma', 'avx512f'])), 'Haswell');
    assert.equal(openblasCoreFor(new Set(['avx2'])), undefined);
    assert.equal(openblasCoreFor(new Set(['sse3'])), undefined);
  });

  it('OPENBLAS_CORETYPE in the environment wins, even empty', () => {
    assert.deepEqual(openblasCoreEnv({ OPENBLAS_CORETYPE: 'Zen' }), { OPENBLAS_CORETYPE: 'Zen' });
    assert.deepEqual(openblasCoreEnv({ OPENBLAS_CORETYPE: '' }), {});
  });
});
