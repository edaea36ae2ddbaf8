// Why a task or request ended before its answer: the reasons an AbortSignal carries through the
// runtime's task queue and the completion engine's scheduler up to the LSP handler.

export class CancelledError extends Error {
  constructor(reason = 'request cancelled') {
    super(reason);
    this.name = 'CancelledError';
  }
}

export class SupersededError extends CancelledError {
  constructor() {
    super('superseded by a newer request for the same document');
    this.name = 'SupersededError';
  }
}

/** A slot opened before a weights swap: its KV came from the old weights. */
export class ModelSwappedError extends CancelledError {
  constructor() {
    super('the model was swapped while this request ran');
    this.name = 'ModelSwappedError';
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new CancelledError();
}
