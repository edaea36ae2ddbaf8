// A tokenizing worker thread: loads its own copy of the tokenizer and runs its job (training
// examples, or token ids) on batches of documents, exactly as the calling thread would. A batch
// whose examples carry context blocks asks the repository context built from the last repository
// it was sent.
import { parentPort, workerData } from 'node:worker_threads';
import { Tokenizer } from '../model/tokenizer';
import { RepositoryCandidates } from './example-context';
import { runJob, type TokenizeBatch, type TokenizeClose, type TokenizeReply, type TokenizeRepository, type TokenizeWorkerData } from './tokenize-pool';

const data = workerData as TokenizeWorkerData;
const tokenizer = Tokenizer.load(data.tokenizerDir);
/** The last repository sent, its context being built or built. */
let current: { id: number; context: Promise<RepositoryCandidates> } | undefined;

async function runBatch(batch: TokenizeBatch): Promise<TokenizeReply> {
  try {
    if (batch.repository !== undefined && current?.id !== batch.repository) throw new Error(`batch ${batch.batch} needs repository ${batch.repository}, which was not sent`);
    const repository = batch.repository === undefined ? undefined : await current!.context;
    return { batch: batch.batch, results: batch.sources.map((s) => runJob(data.job, tokenizer, s, repository)) };
  } catch (err) {
    return { batch: batch.batch, error: (err as Error).message ?? String(err) };
  }
}

parentPort?.on('message', (message: TokenizeBatch | TokenizeRepository | TokenizeClose) => {
  if (message.type === 'close') {
    void current?.context.then((c) => c.dispose()).catch(() => {});
    return parentPort?.close();
  }
  if (message.type === 'repository') {
    const previous = current;
    void previous?.context.then((c) => c.dispose()).catch(() => {});
    const context = RepositoryCandidates.open(message.repository);
    // a failure is reported by the batch that needs it
    context.catch(() => {});
    current = { id: message.id, context };
    return;
  }
  // one batch at a time: the pool sends the next one after this reply
  void runBatch(message).then((reply) => parentPort?.postMessage(reply));
});
