// A tokenizing worker thread: loads its own copy of the tokenizer and runs its job (training
// examples, or token ids) on batches of documents, exactly as the calling thread would.
import { parentPort, workerData } from 'node:worker_threads';
import { Tokenizer } from '../model/tokenizer';
import { runJob, type TokenizeBatch, type TokenizeClose, type TokenizeReply, type TokenizeWorkerData } from './tokenize-pool';

const data = workerData as TokenizeWorkerData;
const tokenizer = Tokenizer.load(data.tokenizerDir);

parentPort?.on('message', (batch: TokenizeBatch | TokenizeClose) => {
  if (batch.type === 'close') return parentPort?.close();
  let reply: TokenizeReply;
  try {
    reply = { batch: batch.batch, results: batch.sources.map((s) => runJob(data.job, tokenizer, s)) };
  } catch (err) {
    reply = { batch: batch.batch, error: (err as Error).message ?? String(err) };
  }
  parentPort?.postMessage(reply);
});
