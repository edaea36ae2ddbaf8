// RemoteHealth turns each remote request's outcome into at most one report per failure: a server
// whose error text changes with every request (vLLM's context-length error quotes the prompt's
// token count, so it differs per keystroke) is still one failure, not one pop-up per keystroke.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RemoteHealth } from '../../server/src/lsp/remote-health';
import { RemoteError } from '../../server/src/remote/http-stream';

const LABEL = 'openai http://gpu-box:8000 (m)';
const tooLong = (tokens: number) => new RemoteError(`answered HTTP 400: This model's maximum context length is 2048 tokens. However, you requested ${tokens} tokens`, 'http', 400);

describe('remote health reports', () => {
  it('one report while the same failure repeats with changing text; a different failure and the recovery are reported', () => {
    const reports: (string | undefined)[] = [];
    const health = new RemoteHealth((m) => reports.push(m));
    for (let tokens = 2100; tokens < 2110; tokens++) health.outcome(LABEL, false, tooLong(tokens));
    assert.equal(reports.length, 1, JSON.stringify(reports));
    assert.match(reports[0]!, /you requested 2100 tokens/);
    health.outcome(LABEL, false, new RemoteError('is unreachable (ECONNREFUSED)', 'unreachable'));
    health.outcome(LABEL, false, new RemoteError('is unreachable (ECONNREFUSED)', 'unreachable'));
    assert.equal(reports.length, 2);
    assert.match(reports[1]!, /unreachable/);
    health.outcome(LABEL, false, undefined);
    assert.deepEqual(reports.at(-1), undefined);
    assert.equal(reports.length, 3);
    assert.equal(health.message, undefined);
  });
});
