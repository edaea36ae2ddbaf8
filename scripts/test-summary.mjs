// Reads the JSON lines of scripts/test-results-reporter.mjs and renders the end of an `npm test` run:
// the failed tests (file › suite › test — reason), then one plain counts line.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

/** Parses the reporter's file; a missing or truncated file (the runner crashed) yields what it has. */
export function readTestResults(file) {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const results = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      results.push(JSON.parse(line));
    } catch {
      /* a line cut off by a crash carries nothing usable */
    }
  }
  return results;
}

/** The summary text for `results`, with file paths shown relative to `root`. */
export function formatTestSummary(results, root) {
  const count = (outcome) => results.filter((r) => r.outcome === outcome).length;
  const failed = results.filter((r) => r.outcome === 'fail');
  const lines = [];
  if (failed.length > 0) {
    lines.push(`Failed tests (${failed.length}):`);
    for (const r of failed) {
      const file = r.file ? relative(root, r.file) : '(unknown file)';
      // A file that failed before any of its tests ran is reported under its own path as the name.
      const names = r.path.length === 1 && r.path[0] === r.file ? [] : r.path;
      const reason = r.reason ? ` — ${r.reason}` : '';
      lines.push(`  ${[file, ...names].join(' › ')}${reason}`);
    }
  }
  const skipped = count('skip');
  lines.push(`${count('pass')} passed, ${failed.length} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
  return lines.join('\n');
}
