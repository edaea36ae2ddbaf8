// The inference worker thread: creates one ORT session (worker-session.ts says why it lives here),
// then runs forwards as the serving thread posts them, one at a time, handing every lent KV array
// and every output back by transfer. It ends when told to release the session.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { createWithFallback } from './execution-provider';
import { type SessionWorkerData, type SessionWorkerReply, type SessionWorkerRequest, transferList, type WireTensor } from './worker-session';

const { modelPath, runtime } = workerData as SessionWorkerData;
const port = parentPort!;
const send = (reply: SessionWorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

async function serve(session: ort.InferenceSession): Promise<void> {
  // ORT's run is synchronous inside its promise, so runs never overlap; the chain keeps replies in order anyway
  let chain = Promise.resolve();
  port.on('message', (m: SessionWorkerRequest) => {
    chain = chain.then(async () => {
      if (m.type === 'release') {
        await session.release().catch(() => {});
        port.close(); // nothing else holds the thread: it exits
        return;
      }
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(m.feeds)) feeds[name] = new ort.Tensor(t.type, t.data as Float32Array, t.dims);
      const returned: Record<string, Float32Array> = {};
      for (const name of m.lent) returned[name] = m.feeds[name]!.data as Float32Array;
      try {
        const out = await session.run(feeds);
        const outputs: Record<string, WireTensor> = {};
        for (const [name, v] of Object.entries(out)) {
          const t = v as ort.Tensor;
          outputs[name] = { type: t.type, dims: t.dims, data: t.data };
        }
        const arrays = [...Object.values(outputs).map((t) => t.data as ArrayBufferView), ...Object.values(returned)];
        send({ type: 'result', id: m.id, outputs, returned }, transferList(arrays));
      } catch (err) {
        send({ type: 'result', id: m.id, error: (err instanceof Error ? err.message : String(err)).trim(), returned }, transferList(Object.values(returned)));
      }
    });
  });
}

createWithFallback({ ...runtime, log: (message) => send({ type: 'log', message }) }, (_provider, options) => ort.InferenceSession.create(modelPath, options)).then(
  ({ session, provider, attempts }) => {
    send({ type: 'ready', provider, attempts });
    return serve(session);
  },
  (err: unknown) => {
    send({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    port.close();
  },
);
