// The inline-completion handler without an engine (the model starting, loading or failed): an
// empty answer rather than an error per keystroke, after the params are checked; and the status
// reason kiln/status and kiln/getStats carry meanwhile.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CancellationToken, ErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { handleInlineCompletion } from '../../server/src/lsp/inline-completion';
import { explainStatus } from '../../server/src/lsp/status-message';

const uri = 'file:///work/a.py';
const documents = new Map([[uri, TextDocument.create(uri, 'python', 1, 'x = ')]]);
const noEngine = { engine: undefined };
const params = { textDocument: { uri }, position: { line: 0, character: 4 }, context: { triggerKind: 1 } };

describe('inline completion with no engine', () => {
  it('answers an empty list', async () => {
    assert.deepEqual(await handleInlineCompletion(params, CancellationToken.None, documents, noEngine), { items: [] });
  });

  it('still refuses bad params and unknown documents first', async () => {
    await assert.rejects(handleInlineCompletion({ ...params, position: { line: 0.5, character: 0 } }, CancellationToken.None, documents, noEngine), (err: unknown) => {
      assert.ok(err instanceof ResponseError);
      assert.equal(err.code, ErrorCodes.InvalidParams);
      return true;
    });
    await assert.rejects(
      handleInlineCompletion({ ...params, textDocument: { uri: 'file:///other' } }, CancellationToken.None, documents, noEngine),
      /no open document file:\/\/\/other/,
    );
  });
});

describe('status reason', () => {
  it("says why while 'starting' and 'loading', and keeps a message already given", () => {
    assert.equal(explainStatus({ state: 'starting' }).message, 'Kiln is starting: the model loads once the settings arrive');
    assert.equal(explainStatus({ state: 'loading', model: '/m/coder' }).message, 'Loading model /m/coder…');
    assert.equal(explainStatus({ state: 'loading' }).message, 'Loading the model…');
    assert.equal(explainStatus({ state: 'loading', model: '/m', message: 'Building the graph…' }).message, 'Building the graph…');
    assert.equal(explainStatus({ state: 'error', message: 'bad model' }).message, 'bad model');
    assert.equal(explainStatus({ state: 'ready', model: 'coder' }).message, undefined);
  });
});
