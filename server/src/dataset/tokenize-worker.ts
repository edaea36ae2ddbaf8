// A tokenizing worker thread: loads its own copy of the tokenizer and turns batches of documents
// into training examples, exactly as the dataset build would in its own thread.
import { parentPort, workerData } from 'node:worker_threads';
import { Tokenizer } from '../model/tokenizer';
import { documentExamples } from './document-examples';
import type { TokenizeBatch, TokenizeReply, TokenizeWorkerData } from './tokenize-pool';

const data = workerData as TokenizeWorkerData;
const ctx = { tokenizer: Tokenizer.load(data.tokenizerDir), template: data.template, endId: data.endId, options: data.options };

parentPort?.on('message', (batch: TokenizeBatch) => {
  let reply: TokenizeReply;
  try {
    reply = { batch: batch.batch, results: batch.sources.map((s) => documentExamples(s, ctx, data.seqLen, data.seed)) };
  } catch (err) {
    reply = { batch: batch.batch, error: (err as Error).message ?? String(err) };
  }
  parentPort?.postMessage(reply);
});
