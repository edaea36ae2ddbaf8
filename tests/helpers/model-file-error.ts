// The one shape every bad model file must fail with: a ModelFileError naming the file and the problem.
import assert from 'node:assert/strict';
import { ModelFileError } from '../../server/src/model/errors';

/** A validator for assert.throws / assert.rejects: a ModelFileError about `file` whose problem matches. */
export function modelFileError(file: string, problem: RegExp): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof ModelFileError, `expected a ModelFileError, got ${(err as Error)?.stack ?? String(err)}`);
    assert.equal(err.file, file, `the error names ${err.file}, expected ${file}`);
    assert.ok(err.message.startsWith(`${file}: `), `message "${err.message}" does not start with the path`);
    assert.match(err.problem, problem);
    assert.ok(!err.message.includes('\n'), `message is one line: ${JSON.stringify(err.message)}`);
    return true;
  };
}
