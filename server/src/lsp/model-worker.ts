// The model worker thread: validates a model folder or builds its graph (checkpoint validation,
// weight hashing, graph build, quantization, the cache write), all synchronous work that would
// otherwise stall the language server's requests. One job per worker; the worker ends with it.
import { parentPort, workerData } from 'node:worker_threads';
import { loadModelConfig } from '../model/config';
import { ModelFileError } from '../model/errors';
import { checkTokenizerFitsModel } from '../model/tokenizer';
import { prepareGraph } from '../runtime/prepare-graph';
import type { ModelWorkerJob, ModelWorkerMessage } from './model-worker-client';
import { validateModelFolder } from './validate-model';

const job = workerData as ModelWorkerJob;
const send = (message: ModelWorkerMessage) => parentPort?.postMessage(message);

try {
  if (job.kind === 'validate') send({ type: 'done', result: validateModelFolder(job.path) });
  else {
    checkTokenizerFitsModel(job.modelDir, loadModelConfig(job.modelDir).vocabSize);
    send({ type: 'done', result: prepareGraph(job.modelDir, { ...job.options, log: (message) => send({ type: 'log', message }) }) });
  }
} catch (err) {
  const e = err as Error;
  send({ type: 'error', error: err instanceof ModelFileError ? { name: e.name, message: e.message, file: err.file, problem: err.problem } : { name: e?.name ?? 'Error', message: e?.message ?? String(err) } });
}
