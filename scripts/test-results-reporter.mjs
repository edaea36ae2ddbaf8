// A node:test reporter that writes one JSON line per finished leaf test (a test with no subtests),
// so scripts/run-tests.mjs can end a long run with the short list of what failed.
// Line shape: {"outcome":"pass"|"fail"|"skip","file","path":[suite, …, test],"reason"?}.
import { inspect } from 'node:util';

/** Text of any thrown value: String() throws on objects without a primitive form (null prototypes). */
function printable(value) {
  try {
    return String(value);
  } catch {
    return inspect(value, { depth: 1, breakLength: Infinity });
  }
}

/** The start of a failure's message on one line (assertion messages put the values on line 3). */
function shortReason(error) {
  const cause = error?.cause ?? error;
  const lines = printable(cause?.message ?? cause ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const text = lines.slice(0, 3).join(' ');
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** Why a leaf failed, in a few words. */
function failureReason(data) {
  if (data.details?.error?.failureType === 'cancelledByParent') return 'cancelled (its parent failed or timed out)';
  // node reports a file that threw or exited outside any test as a test named by the file's path
  if (data.nesting === 0 && data.name === data.file) return 'the file failed outside any test (its error output is above)';
  return shortReason(data.details?.error);
}

export default async function* testResultsReporter(source) {
  // Names of the tests currently open in the running file, by nesting depth; files run one at a time.
  let open = [];
  for await (const event of source) {
    const data = event.data ?? {};
    if (event.type === 'test:start') {
      open = open.slice(0, data.nesting);
      if (data.nesting > 0 && open[data.nesting - 1]) open[data.nesting - 1].hasChildren = true;
      open.push({ name: data.name, hasChildren: false });
      continue;
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const own = open[data.nesting];
    const failureType = data.details?.error?.failureType;
    // A suite or a test with subtests is reported through its leaves; a file that failed before any
    // test ran has no leaves, so it is reported itself.
    if ((own?.name === data.name && own.hasChildren) || data.details?.type === 'suite' || failureType === 'subtestsFailed') continue;
    const path = [...open.slice(0, data.nesting).map((t) => t.name), data.name];
    const outcome = event.type === 'test:fail' ? 'fail' : data.skip !== undefined || data.todo !== undefined ? 'skip' : 'pass';
    const line = { outcome, file: data.file ?? '', path };
    if (outcome === 'fail') line.reason = failureReason(data);
    yield `${JSON.stringify(line)}\n`;
  }
}
