// What the user did lately, as the server sees it: the line ranges edited (from didChange, kept
// valid as lines are inserted and deleted above them) and the ranges of documents shown in editors
// (from kiln/visibleRanges), newest first, in bounded rings.

/** Lines [start, end), 0-based. */
export interface LineRange {
  start: number;
  end: number;
}

export interface EditedRange extends LineRange {
  path: string;
  /** Larger is newer. */
  seq: number;
}

export interface ViewedDocument {
  path: string;
  ranges: LineRange[];
  seq: number;
}

/** One text change as LSP describes it: old lines [startLine, endLine] (inclusive) replaced by text with `insertedLines` line breaks. */
export interface LineChange {
  startLine: number;
  endLine: number;
  insertedLines: number;
}

export interface RecentActivityOptions {
  /** Edited ranges kept over all documents (default 16). */
  maxEdits: number;
  /** Viewed documents kept (default 8). */
  maxViewed: number;
}

export class RecentActivity {
  private editList: EditedRange[] = [];
  private viewList: ViewedDocument[] = [];
  private seq = 0;
  private readonly options: RecentActivityOptions;

  constructor(options: Partial<RecentActivityOptions> = {}) {
    this.options = { maxEdits: 16, maxViewed: 8, ...options };
  }

  /** Records a change to `path`: ranges below it shift, ranges it touches merge into it, and it becomes the newest. */
  noteChange(path: string, change: LineChange): void {
    const delta = change.insertedLines - (change.endLine - change.startLine);
    let merged: LineRange = { start: change.startLine, end: change.startLine + change.insertedLines + 1 };
    const kept: EditedRange[] = [];
    for (const r of this.editList) {
      if (r.path !== path) {
        kept.push(r);
        continue;
      }
      if (r.start > change.endLine) kept.push({ ...r, start: r.start + delta, end: r.end + delta });
      else if (r.end <= change.startLine) kept.push(r);
      // touched by the change: its lines after the change shift, and it joins the new range
      else merged = { start: Math.min(merged.start, r.start), end: Math.max(merged.end, r.end > change.endLine ? r.end + delta : merged.end) };
    }
    this.editList = [{ path, ...merged, seq: ++this.seq }, ...kept.filter((r) => r.end > r.start)].slice(0, this.options.maxEdits);
    for (const v of this.viewList) if (v.path === path) v.ranges = v.ranges.map((r) => (r.start > change.endLine ? { start: r.start + delta, end: r.end + delta } : r));
  }

  /** Records the ranges of `path` an editor shows now; it becomes the newest viewed document. */
  noteView(path: string, ranges: readonly LineRange[]): void {
    const clean = ranges.filter((r) => Number.isInteger(r.start) && Number.isInteger(r.end) && r.end > r.start && r.start >= 0).slice(0, 4);
    if (clean.length === 0) return;
    this.viewList = [{ path, ranges: clean.map((r) => ({ ...r })), seq: ++this.seq }, ...this.viewList.filter((v) => v.path !== path)].slice(0, this.options.maxViewed);
  }

  /** A closed or renamed document's records go. */
  forget(path: string): void {
    this.editList = this.editList.filter((r) => r.path !== path);
    this.viewList = this.viewList.filter((v) => v.path !== path);
  }

  /** Edited ranges, newest first. */
  edits(): readonly EditedRange[] {
    return this.editList;
  }

  /** Viewed documents, newest first. */
  viewed(): readonly ViewedDocument[] {
    return this.viewList;
  }
}
