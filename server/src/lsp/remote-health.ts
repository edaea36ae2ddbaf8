// One clear message about the remote backend, not one per keystroke: a failure is reported when it
// starts or changes (the status bar and, once per distinct message, a notification), and cleared
// when the backend answers again. A failure is the same one while its kind and HTTP status are,
// whatever the server's text says, so a repeated failure keeps its first message and the server's
// once-per-message rule keeps it from becoming a loop of pop-ups.
import { RemoteError } from '../remote/http-stream';

/** The user-facing line for a failed remote request. */
export function remoteFailureMessage(label: string, fallbackToLocal: boolean, err: unknown): string {
  const what = err instanceof RemoteError ? err.message : `failed: ${(err as Error)?.message ?? String(err)}`;
  const then = fallbackToLocal
    ? 'The local model answers until it works again.'
    : 'No suggestions until it works again (set "kiln.backend.fallbackToLocal" to use the local model meanwhile).';
  return `Kiln's remote backend (${label}) ${what}. ${then}`;
}

/**
 * What makes two failures the same one: the backend, the error's kind and HTTP status. Not the text:
 * a server's error text can change with every request (vLLM's context-length error quotes the
 * prompt's token count), and each new text would be a new pop-up.
 */
function failureClass(label: string, err: unknown): string {
  return err instanceof RemoteError ? `${label}\0${err.kind}\0${err.status ?? ''}` : `${label}\0${(err as Error)?.message ?? String(err)}`;
}

export class RemoteHealth {
  private failing: { message: string; failure: string } | undefined;

  /** `report` gets the new message, or undefined once the backend works again. */
  constructor(private readonly report: (message: string | undefined) => void) {}

  get message(): string | undefined {
    return this.failing?.message;
  }

  outcome(label: string, fallbackToLocal: boolean, err: unknown): void {
    if (err === undefined) {
      if (this.failing === undefined) return;
      this.failing = undefined;
      this.report(undefined);
      return;
    }
    const failure = failureClass(label, err);
    if (failure === this.failing?.failure) return; // the same failure again: its first message stands
    this.failing = { message: remoteFailureMessage(label, fallbackToLocal, err), failure };
    this.report(this.failing.message);
  }

  reset(): void {
    this.failing = undefined;
  }
}
