// One inference server owns the model: the session, a KV slot per sequence (slots come from and go
// back to the prefix-matching pool, under its byte budget), and a queue of tasks as data (open,
// fork, prefill chunks, decode steps; drops and weight swaps applied between steps). One loop runs
// them. Every decode task due at a step, from any caller, advances in one batched forward; a prefill
// runs a chunk at a time so decodes of other slots interleave (background prefill in small chunks,
// so a request never waits for a whole background prompt). A task whose signal aborts is dropped
// if queued and rejected after the step it is in.
import { performance } from 'node:perf_hooks';
import { KvPool, type KvPoolStats } from '../kvcache/kv-pool';
import { CancelledError, ModelSwappedError } from './cancellation';
import type { DecoderSession } from './decoder-session';
import type { Generator, OpenedSlot, Slot, TaskOptions, TaskPriority } from './generator';
import type { BoundaryTask, DecodeTask, ForkTask, OpenTask, PrefillTask, QueuedTask, SlotRecord, VerifyTask } from './inference-tasks';
import { KvBatch } from './kv-batch';
import type { MemoryReport } from './memory';

export interface InferenceServerOptions {
  /** Byte budget of the prefix cache (pooled KV states). */
  kvBudgetBytes: number;
  /** Prompt tokens per prefill run; longer prompts take several, with decode steps between them. */
  prefillChunk?: number;
  /** Most slots one batched decode step advances. */
  maxBatch?: number;
  /**
   * Prompt tokens per prefill run of background work (pre-warm, speculation): a request arriving
   * meanwhile waits for one such run at most, never for a whole background prompt.
   */
  backgroundPrefillChunk?: number;
}

/** One forward of the loop: its kind, the tokens it computed (all rows) and how long it took. */
export interface ForwardRun {
  kind: 'prefill' | 'decode' | 'verify';
  priority: TaskPriority;
  tokens: number;
  ms: number;
}

// A cold keystroke prompt (~1,000 tokens) in one run: splitting it measured slower on the CPU
const DEFAULT_PREFILL_CHUNK = 1024;
const DEFAULT_MAX_BATCH = 8;
// 64 tokens: ~20 ms on the 25M reference model and ~150 ms on a 0.5B one (2 CPU threads) — what a
// keystroke may wait behind a pre-warm; larger runs are barely faster per token there
const DEFAULT_BACKGROUND_PREFILL_CHUNK = 64;

export class InferenceServer implements Generator {
  private readonly queue: QueuedTask[] = [];
  private readonly boundary: BoundaryTask[] = [];
  private readonly slots = new Map<number, SlotRecord>();
  private readonly pool: KvPool;
  private nextSlotId = 1;
  private modelGeneration = 0;
  private looping = false;
  private batch: KvBatch | undefined;
  private idleWaiters: (() => void)[] = [];
  private readonly prefillChunk: number;
  private readonly maxBatch: number;
  private readonly backgroundPrefillChunk: number;
  private readonly forwardListeners = new Set<(run: ForwardRun) => void>();

  constructor(
    private current: DecoderSession,
    options: InferenceServerOptions,
  ) {
    this.prefillChunk = options.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
    this.maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.backgroundPrefillChunk = options.backgroundPrefillChunk ?? DEFAULT_BACKGROUND_PREFILL_CHUNK;
    this.pool = new KvPool({ budgetBytes: options.kvBudgetBytes, newState: () => this.current.newState(1), track: (s) => this.current.track(s) });
  }

  get session(): DecoderSession {
    return this.current;
  }

  get vocabSize(): number {
    return this.current.config.vocabSize;
  }

  /** True when no task is queued or running. */
  get idle(): boolean {
    return !this.looping && this.queue.length === 0;
  }

  whenIdle(): Promise<void> {
    return this.idle ? Promise.resolve() : new Promise((r) => this.idleWaiters.push(r));
  }

  // ---------- the Generator interface ----------

  open(tokens: readonly number[], options: TaskOptions = {}): Promise<OpenedSlot> {
    return this.enqueue<{ slot: SlotRecord; reused: number }>(
      options,
      (settle) => ({ kind: 'open', tokens: [...tokens], modelGeneration: this.modelGeneration, ...settle }) satisfies OpenTask,
    );
  }

  fork(slot: Slot, options: TaskOptions = {}): Promise<Slot> {
    // claimed like a prefill: a fork queued behind a chunked prefill must not copy half of it
    return this.withClaimed([slot], options, ([record]) => this.enqueue<SlotRecord>(options, (settle) => ({ kind: 'fork', slot: record!, ...settle }) satisfies ForkTask));
  }

  extend(slot: Slot, tokens: readonly number[], options: TaskOptions = {}): Promise<Float32Array> {
    if (tokens.length === 0) return Promise.reject(new Error('extend needs at least one token'));
    return this.withClaimed([slot], options, ([record]) =>
      this.enqueue<Float32Array>(options, (settle) => ({ kind: 'prefill', slot: record!, tokens: [...tokens], done: 0, ...settle }) satisfies PrefillTask),
    );
  }

  step(slots: readonly Slot[], tokens: readonly number[], options: TaskOptions = {}): Promise<Float32Array[]> {
    if (slots.length !== tokens.length) return Promise.reject(new Error(`step: ${slots.length} slots and ${tokens.length} tokens`));
    return this.withClaimed(slots, options, (records) =>
      Promise.all(
        records.map((record, i) => this.enqueue<Float32Array>(options, (settle) => ({ kind: 'decode', slot: record, token: tokens[i]!, ...settle }) satisfies DecodeTask)),
      ),
    );
  }

  verify(slot: Slot, tokens: readonly number[], options: TaskOptions = {}): Promise<Float32Array[]> {
    if (tokens.length === 0) return Promise.reject(new Error('verify needs at least one token'));
    return this.withClaimed([slot], options, ([record]) =>
      this.enqueue<Float32Array[]>(options, (settle) => ({ kind: 'verify', slot: record!, tokens: [...tokens], ...settle }) satisfies VerifyTask),
    );
  }

  truncate(slot: Slot, length: number): void {
    const record = this.record(slot);
    if (record.busy) throw new Error(`slot ${slot.id} cannot be truncated while a task of it is queued`);
    record.state.truncate(length); // bumps the state's revision, so a batch holding it regathers
  }

  release(slot: Slot, options: { keep?: boolean } = {}): void {
    const record = this.slots.get(slot.id);
    if (!record || record.released) return;
    record.released = true;
    this.slots.delete(slot.id);
    this.atBoundary({ kind: 'drop', slot: record, keep: options.keep ?? true });
  }

  // ---------- model and cache management ----------

  /** Replaces the weights between two steps; resolves to the old session for the caller to release. */
  swap(next: DecoderSession): Promise<DecoderSession> {
    return new Promise((resolve) => {
      let old = this.current; // read when applied: two swaps at one boundary each hand back their own predecessor
      this.atBoundary({
        kind: 'swap',
        apply: () => {
          old = this.current;
          this.current = next;
          this.modelGeneration++;
          this.batch = undefined;
          this.pool.clear(); // every pooled state holds KV of the old weights
        },
        resolve: () => resolve(old),
      });
    });
  }

  setCacheBudget(bytes: number): void {
    this.pool.setBudget(bytes);
  }

  clearCache(): void {
    this.pool.clear();
  }

  /** Calls `listener` after every forward (what the engine's prefill budget measures rates from); returns its removal. */
  observeForwards(listener: (run: ForwardRun) => void): () => void {
    this.forwardListeners.add(listener);
    return () => this.forwardListeners.delete(listener);
  }

  /** Leading tokens of `tokens` a slot opened now would reuse from the prefix cache (nothing is taken). */
  cachedPrefix(tokens: readonly number[]): number {
    return this.pool.peek(tokens);
  }

  cacheStats(): KvPoolStats & { bytes: number; states: number } {
    return { bytes: this.pool.bytes, states: this.pool.size, ...this.pool.stats() };
  }

  /** The session's memory report, counting the batched-decode buffer as KV too. */
  async memory(): Promise<MemoryReport> {
    const report = await this.current.memory();
    return { ...report, kvBytes: report.kvBytes + (this.batch?.bytes ?? 0) };
  }

  // ---------- the queue ----------

  private record(slot: Slot): SlotRecord {
    const record = this.slots.get(slot.id);
    if (!record) throw new Error(`slot ${slot.id} is not open on this server`);
    return record;
  }

  /**
   * Runs `queue` with the slots' records marked busy (one task per slot at a time) until its promise
   * settles. Every slot is checked before any is marked, so a refused call leaves none busy; a
   * refusal is a rejected promise, never a throw.
   */
  private withClaimed<T>(slots: readonly Slot[], options: TaskOptions, queue: (records: SlotRecord[]) => Promise<T>): Promise<T> {
    let records: SlotRecord[];
    try {
      records = slots.map((s) => this.record(s));
      const busy = records.find((r, i) => r.busy || records.indexOf(r) !== i);
      if (busy) throw new Error(`slot ${busy.id} already has a task queued`);
    } catch (err) {
      return Promise.reject(err);
    }
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    for (const r of records) r.busy = true;
    return queue(records).finally(() => {
      for (const r of records) r.busy = false;
    });
  }

  private enqueue<T>(
    options: TaskOptions,
    make: (settle: { priority: 'foreground' | 'background'; signal: AbortSignal | undefined; resolve: (v: T) => void; reject: (e: unknown) => void }) => QueuedTask,
  ): Promise<T> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        const i = this.queue.indexOf(task);
        if (i >= 0) {
          this.queue.splice(i, 1);
          reject(signal!.reason);
        } // a running task is rejected once its step ends (see settle)
      };
      const done = () => signal?.removeEventListener('abort', onAbort);
      const task = make({
        priority: options.priority ?? 'foreground',
        signal,
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(e)),
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(task);
      void this.loop();
    });
  }

  private atBoundary(task: BoundaryTask): void {
    this.boundary.push(task);
    if (!this.looping) this.applyBoundary();
  }

  private applyBoundary(): void {
    for (const task of this.boundary.splice(0)) {
      if (task.kind === 'swap') {
        task.apply();
        task.resolve();
      } else {
        // the batch buffer holds copies of its members' KV outside the pool's budget: let it go with them
        if (this.batch?.members.includes(task.slot.state)) this.batch = undefined;
        // pooled for reuse, or simply dropped (old weights, or not worth keeping)
        if (task.keep && task.slot.modelGeneration === this.modelGeneration) this.pool.release(task.slot.state);
      }
    }
  }

  private async loop(): Promise<void> {
    if (this.looping) return;
    this.looping = true;
    try {
      for (;;) {
        // a turn of the event loop: every caller settled by the last step queues its next task (and
        // its releases) first, so their decodes share the next forward
        await new Promise<void>((r) => setImmediate(r));
        this.applyBoundary();
        const work = this.take();
        if (!work) break;
        await this.execute(work);
      }
    } finally {
      this.looping = false;
      this.applyBoundary();
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** The next unit of work: foreground before background; all due decodes of that class together. */
  private take(): QueuedTask[] | undefined {
    const foreground = this.queue.some((t) => t.priority === 'foreground');
    const due = this.queue.filter((t) => (t.priority === 'foreground') === foreground);
    const first = due[0];
    if (!first) return undefined;
    const work = first.kind === 'decode' ? due.filter((t) => t.kind === 'decode').slice(0, this.maxBatch) : [first];
    for (const t of work) this.queue.splice(this.queue.indexOf(t), 1);
    return work;
  }

  private async execute(work: QueuedTask[]): Promise<void> {
    const live = work.filter((t) => this.admit(t));
    if (live.length === 0) return;
    try {
      const first = live[0]!;
      if (first.kind === 'open') return this.settle(first, this.openSlot(first.tokens));
      if (first.kind === 'fork') return this.settle(first, this.newSlot(this.current.track(first.slot.state.slice(first.slot.state.length))));
      if (first.kind === 'prefill') return await this.runPrefillChunk(first);
      if (first.kind === 'verify') return await this.runVerify(first);
      await this.decode(live as DecodeTask[]);
    } catch (err) {
      for (const t of live) t.reject(err);
    }
  }

  /** Drops a task whose signal aborted, whose slot predates a swap, or whose slot was released. */
  private admit(task: QueuedTask): boolean {
    if (task.signal?.aborted) {
      task.reject(task.signal.reason);
      return false;
    }
    const generation = task.kind === 'open' ? task.modelGeneration : task.slot.modelGeneration;
    if (generation !== this.modelGeneration) {
      task.reject(new ModelSwappedError());
      return false;
    }
    if ('slot' in task && task.slot.released) {
      task.reject(new CancelledError(`slot ${task.slot.id} was released`)); // its state may be pooled (and reused) by now
      return false;
    }
    return true;
  }

  private settle<T>(task: { signal: AbortSignal | undefined; resolve: (v: T) => void; reject: (e: unknown) => void }, value: T): void {
    if (task.signal?.aborted) task.reject(task.signal.reason);
    else task.resolve(value);
  }

  private openSlot(tokens: readonly number[]): { slot: SlotRecord; reused: number } {
    const { state, reused } = this.pool.acquire(tokens);
    return { slot: this.newSlot(state), reused };
  }

  private newSlot(state: SlotRecord['state']): SlotRecord {
    const record: SlotRecord = {
      id: this.nextSlotId++,
      state,
      modelGeneration: this.modelGeneration,
      released: false,
      busy: false,
      get tokens() {
        return this.state.tokens();
      },
    };
    this.slots.set(record.id, record);
    return record;
  }

  /** Runs one forward and tells the observer what it computed and how long it took. */
  private async timed<T>(kind: ForwardRun['kind'], priority: TaskPriority, tokens: number, run: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const out = await run();
    const ms = performance.now() - t0;
    for (const listener of this.forwardListeners) listener({ kind, priority, tokens, ms });
    return out;
  }

  /** One chunk of a prefill; an unfinished prefill goes to the back of the queue. */
  private async runPrefillChunk(task: PrefillTask): Promise<void> {
    const size = task.priority === 'background' ? Math.min(this.prefillChunk, this.backgroundPrefillChunk) : this.prefillChunk;
    const chunk = task.tokens.slice(task.done, task.done + size);
    const { logits } = await this.timed('prefill', task.priority, chunk.length, () => this.current.forward(task.slot.state, [chunk as number[]], 'last'));
    task.done += chunk.length;
    if (task.done < task.tokens.length && !task.signal?.aborted) this.queue.push(task);
    else this.settle(task, logits);
  }

  /** The draft in one forward with logits at every position: [S, V] -> S rows of [V]. */
  private async runVerify(task: VerifyTask): Promise<void> {
    const V = this.current.config.vocabSize;
    const { logits } = await this.timed('verify', task.priority, task.tokens.length, () => this.current.forward(task.slot.state, [task.tokens as number[]], 'all'));
    this.settle(
      task,
      task.tokens.map((_, i) => logits.slice(i * V, (i + 1) * V)),
    );
  }

  /** One batched forward for every due decode: a lone slot feeds its state's view, N slots a padded batch. */
  private async decode(tasks: DecodeTask[]): Promise<void> {
    const V = this.current.config.vocabSize;
    if (tasks.length === 1) {
      const t = tasks[0]!;
      const { logits } = await this.timed('decode', t.priority, 1, () => this.current.forward(t.slot.state, [[t.token]], 'last'));
      return this.settle(t, logits);
    }
    const tokens = tasks.map((t) => [t.token]);
    this.batch = KvBatch.for(
      tasks.map((t) => t.slot.state),
      this.batch,
    );
    const batch = this.batch;
    const out = await this.timed('decode', tasks[0]!.priority, tasks.length, () => this.current.run(batch.input(tokens)));
    batch.append(tokens, out.newKeys, out.newValues);
    for (const [b, t] of tasks.entries()) this.settle(t, out.logits.slice(b * V, (b + 1) * V)); // [B,1,V] -> [V] each
  }
}
