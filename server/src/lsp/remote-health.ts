// One clear message about the remote backend, not one per keystroke: a failure is reported when it
// starts or changes (the status bar and, once per distinct message, a notification), and cleared
// when the backend answers again. The messages carry no timings, so a repeated failure repeats the
// same text and the server's once-per-message rule keeps it from becoming a loop of pop-ups.
import { RemoteError } from '../remote/http-stream';

/** The user-facing line for a failed remote request. */
export function remoteFailureMessage(label: string, fallbackToLocal: boolean, err: unknown): string {
  const what = err instanceof RemoteError ? err.message : `failed: ${(err as Error)?.message ?? String(err)}`;
  const then = fallbackToLocal
    ? 'The local model answers until it works again.'
    : 'No suggestions until it works again (set "kiln.backend.fallbackToLocal" to use the local model meanwhile).';
  return `Kiln's remote backend (${label}) ${what}. ${then}`;
}

export class RemoteHealth {
  private failing: string | undefined;

  /** `report` gets the new message, or undefined once the backend works again. */
  constructor(private readonly report: (message: string | undefined) => void) {}

  get message(): string | undefined {
    return this.failing;
  }

  outcome(label: string, fallbackToLocal: boolean, err: unknown): void {
    const message = err === undefined ? undefined : remoteFailureMessage(label, fallbackToLocal, err);
    if (message === this.failing) return;
    this.failing = message;
    this.report(message);
  }

  reset(): void {
    this.failing = undefined;
  }
}
