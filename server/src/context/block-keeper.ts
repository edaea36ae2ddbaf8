// One context block per document, kept between keystrokes: the same candidates give the very same
// block without building it again, and a new block is built with the previous one's snippets
// preferred (hysteresis), so the block's tokens — the front of the prompt — rarely change.
import { type BlockRequest, buildContextBlock, type ContextBlock, snippetKey } from './block';

/** Documents whose last block is kept. */
const KEPT_DOCUMENTS = 64;

export class ContextBlockKeeper {
  private readonly last = new Map<string, { candidatesKey: string; block: ContextBlock }>();
  /** Blocks built (not answered from the last one): the storm test bounds this. */
  built = 0;

  blockFor(document: string, request: Omit<BlockRequest, 'previous'>): ContextBlock {
    const candidatesKey = `${request.maxTokens}\0${request.format ?? ''}\0${request.currentPath}\0${request.candidates.map(snippetKey).join('\n')}`;
    const known = this.last.get(document);
    if (known?.candidatesKey === candidatesKey) return known.block;
    const previous = new Set(known?.block.snippets.map(snippetKey) ?? []);
    const block = buildContextBlock({ ...request, previous });
    this.built++;
    this.last.delete(document);
    this.last.set(document, { candidatesKey, block });
    if (this.last.size > KEPT_DOCUMENTS) this.last.delete(this.last.keys().next().value!);
    return block;
  }

  forget(document: string): void {
    this.last.delete(document);
  }

  clear(): void {
    this.last.clear();
  }
}
