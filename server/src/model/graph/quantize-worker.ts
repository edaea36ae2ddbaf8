// The graph build's helper thread (parallel-quantize.ts): opens the checkpoint once, then codes the
// rows each job names into the job's shared buffers and flips its done flag; a failure posts its
// reason on the port first. Told to close, it closes the checkpoint's files (descriptors belong to the
// process, not the thread) and ends.
import { parentPort, workerData } from 'node:worker_threads';
import { type Checkpoint, openCheckpoint } from '../checkpoint';
import { tiledRowReader } from '../quantize';
import { stackedRowReader } from './decoder-parts';
import { fileIdentity, type QuantizeJob, type QuantizeWorkerData, quantizeTargetRows } from './parallel-quantize';

const { modelDir, files, port } = workerData as QuantizeWorkerData;
let checkpoint: Checkpoint | undefined;

/** The checkpoint, once its weights files are checked to be the ones the build hashed. */
function openSame(): Checkpoint {
  const opened = openCheckpoint(modelDir);
  const same =
    opened.weights.files.length === files.length && files.every((f, i) => opened.weights.files[i]!.path === f.path && JSON.stringify(fileIdentity(f.path)) === JSON.stringify(f));
  if (same) return opened;
  opened.weights.close();
  throw new Error(`the weights files of ${modelDir} changed during the build`);
}

parentPort!.on('message', (job: QuantizeJob | 'close') => {
  if (job === 'close') {
    checkpoint?.weights.close();
    parentPort!.close();
    port.close();
    return;
  }
  const { done } = job;
  try {
    checkpoint ??= openSame();
    const readRows = stackedRowReader(checkpoint.weights, job.names, job.rows, job.target.out.k);
    if (!readRows) throw new Error('the checkpoint cannot read row ranges');
    quantizeTargetRows(job.target, tiledRowReader(readRows, job.target.out.k), job.first, job.end);
    Atomics.store(done, 0, 1);
  } catch (err) {
    port.postMessage({ error: (err as Error).message ?? String(err) });
    Atomics.store(done, 0, -1);
  }
  Atomics.notify(done, 0);
});
