// Typing-through: when the user types characters that match the suggestion already shown, the
// rest of that suggestion is still the answer, with no model work.

/** A suggestion as shown: the document text around the cursor it was computed for. */
export interface ShownSuggestion {
  before: string; // document text before the cursor
  after: string; // document text after the cursor
  completion: string;
}

/**
 * The remaining suggestion when `before`/`after` are `shown` plus typed characters that match it;
 * undefined when the edit went elsewhere or diverged. An exhausted suggestion gives undefined too.
 */
export function typeThrough(shown: ShownSuggestion, before: string, after: string): string | undefined {
  if (after !== shown.after || before.length <= shown.before.length || !before.startsWith(shown.before)) return undefined;
  const typed = before.slice(shown.before.length);
  if (!shown.completion.startsWith(typed)) return undefined;
  const rest = shown.completion.slice(typed.length);
  return rest.length > 0 ? rest : undefined;
}

/** The last suggestion per document. */
export class ShownSuggestions {
  private readonly byDocument = new Map<string, ShownSuggestion>();

  remember(uri: string, shown: ShownSuggestion): void {
    this.byDocument.set(uri, shown);
  }

  get(uri: string): ShownSuggestion | undefined {
    return this.byDocument.get(uri);
  }

  forget(uri: string): void {
    this.byDocument.delete(uri);
  }

  clear(): void {
    this.byDocument.clear();
  }
}
