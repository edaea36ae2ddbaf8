// First load of a real-size checkpoint without the session: prepareGraph (weights hash, checkpoint
// validation, graph build and write) into an empty cache, with the CPU profile's self time per
// function and the built files' sha256 (a faster build must write the same bytes).
//
//   node --import tsx tests/bench/graph-build.bench.ts [--size 0.5b] [--precision int8|int4|fp32|fp16] [--top 15] [--out FILE]
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector';
import * as os from 'node:os';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DATA_FILE, MODEL_FILE } from '../../server/src/model/graph/write-model';
import { type PrepareGraphOptions, prepareGraph } from '../../server/src/runtime/prepare-graph';
import { BenchArgs } from './bench-args';
import { emitJson, log, round } from './bench-stats';
import { REAL_SIZE_CHOICES, realSizeModel } from './real-size-model';

const PRECISIONS: Record<string, PrepareGraphOptions> = {
  int8: { quantization: 8 },
  int4: { quantization: 4 },
  fp32: { weightType: 'float32' },
  fp16: { weightType: 'float16' },
};

const args = { size: '0.5b' as (typeof REAL_SIZE_CHOICES)[number], precision: 'int8', top: 15, out: undefined as string | undefined };
const argv = new BenchArgs(process.argv.slice(2));
for (let a = argv.flag(); a !== undefined; a = argv.flag()) {
  if (a === '--size') args.size = argv.oneOf(REAL_SIZE_CHOICES);
  else if (a === '--precision') args.precision = argv.oneOf(Object.keys(PRECISIONS));
  else if (a === '--top') args.top = argv.positiveInt();
  else if (a === '--out') args.out = argv.value();
  else throw new Error(`unknown argument ${a}`);
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self milliseconds per function (name and file), largest first. */
function selfTimes(p: Profile): { fn: string; ms: number }[] {
  const byNode = new Map(p.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const f = byNode.get(id)!.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${basename(f.url) || ''}`.trim();
    ms.set(key, (ms.get(key) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  });
  return [...ms].map(([fn, t]) => ({ fn, ms: round(t) })).sort((a, b) => b.ms - a.ms);
}

function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(8 << 20);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

const post = <T>(s: Session, method: string): Promise<T> => new Promise((resolve, reject) => s.post(method, (err, r) => (err ? reject(err) : resolve(r as T))));

async function main(): Promise<void> {
  const modelDir = realSizeModel(args.size, { log });
  const cacheDir = mkdtempSync(join(os.tmpdir(), 'kiln-graph-build-'));
  const session = new Session();
  session.connect();
  try {
    await post(session, 'Profiler.enable');
    await post(session, 'Profiler.start');
    const t0 = performance.now();
    const built = prepareGraph(modelDir, { ...PRECISIONS[args.precision], cacheDir });
    const buildMs = performance.now() - t0;
    const { profile } = await post<{ profile: Profile }>(session, 'Profiler.stop');
    const top = selfTimes(profile).slice(0, args.top);
    const files = { key: basename(built.graphDir), [MODEL_FILE]: sha256File(join(built.graphDir, MODEL_FILE)), [DATA_FILE]: sha256File(join(built.graphDir, DATA_FILE)) };
    log(
      `${args.size} ${args.precision}: prepareGraph ${round(buildMs)} ms (load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')})`,
    );
    for (const t of top) log(`  ${String(t.ms).padStart(9)} ms  ${t.fn}`);
    log(`  ${JSON.stringify(files)}`);
    emitJson({ size: args.size, precision: args.precision, buildMs: round(buildMs), selfMs: top, files }, args.out);
  } finally {
    session.disconnect();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
