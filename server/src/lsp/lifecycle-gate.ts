// The LSP 3.18 lifecycle, enforced before any handler runs: vscode-languageserver dispatches every
// request whether or not `initialize` came first. Before `initialize`, a request is answered with
// ServerNotInitialized and a notification is dropped (`exit` excepted); a second `initialize` and any
// request after `shutdown` are answered with InvalidRequest.
import {
  ErrorCodes,
  InitializeRequest,
  type Message,
  type MessageStrategy,
  type MessageWriter,
  type NotificationMessage,
  type RequestMessage,
  ShutdownRequest,
  ExitNotification,
} from 'vscode-languageserver/node';

type Phase = 'uninitialized' | 'running' | 'shutDown';

export interface LifecycleGate {
  /** Pass as `messageStrategy` in the connection options. */
  readonly strategy: MessageStrategy;
  /** Whether `shutdown` was received: an ending input stream then exits with 0 rather than 1. */
  readonly shutdownRequested: boolean;
}

function isRequest(message: Message): message is RequestMessage {
  const m = message as RequestMessage;
  return typeof m.method === 'string' && (typeof m.id === 'number' || typeof m.id === 'string');
}

function isNotification(message: Message): message is NotificationMessage {
  const m = message as RequestMessage;
  return typeof m.method === 'string' && m.id === undefined;
}

export function createLifecycleGate(writer: MessageWriter): LifecycleGate {
  let phase: Phase = 'uninitialized';
  const refuse = (request: RequestMessage, code: number, message: string) => writer.write({ jsonrpc: '2.0', id: request.id, error: { code, message } } as Message);
  const strategy: MessageStrategy = {
    handleMessage(message, next) {
      if (isRequest(message)) {
        const method = message.method;
        if (phase === 'uninitialized' && method !== InitializeRequest.method) {
          return refuse(message, ErrorCodes.ServerNotInitialized, `the server is not initialized: ${method} was sent before initialize`);
        }
        if (phase === 'running' && method === InitializeRequest.method) return refuse(message, ErrorCodes.InvalidRequest, 'initialize was already received');
        if (phase === 'shutDown') return refuse(message, ErrorCodes.InvalidRequest, `the server is shutting down: ${method} was sent after shutdown`);
        if (method === InitializeRequest.method) phase = 'running';
        if (method === ShutdownRequest.method) phase = 'shutDown';
      } else if (isNotification(message) && phase === 'uninitialized' && message.method !== ExitNotification.method) {
        return; // LSP: notifications before initialize are dropped
      }
      return next(message);
    },
  };
  return {
    strategy,
    get shutdownRequested() {
      return phase === 'shutDown';
    },
  };
}
