// The bounded Content-Length reader: well-formed frames arrive whole whatever the chunking; a
// missing, malformed, oversized or wrong length is one FramingError, after which nothing is read.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { Message } from 'vscode-languageserver/node';
import { BoundedMessageReader, type BoundedReaderLimits, FramingError, MIB } from '../../server/src/lsp/bounded-reader';

function frame(message: object, header = ''): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  return Buffer.concat([Buffer.from(`${header}Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

function raw(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

function open(limits: Partial<BoundedReaderLimits> = {}) {
  const stream = new PassThrough();
  const reader = new BoundedMessageReader(stream, limits);
  const messages: Message[] = [];
  const errors: Error[] = [];
  let closed = 0;
  reader.onError((e) => errors.push(e));
  reader.onClose(() => closed++);
  reader.listen((m) => messages.push(m));
  return {
    stream,
    reader,
    messages,
    errors,
    get closed() {
      return closed;
    },
    /** Writes each buffer as its own chunk and lets the stream deliver them. */
    async feed(...chunks: Buffer[]) {
      for (const c of chunks) stream.write(c);
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

const ping = (id: number) => ({ jsonrpc: '2.0', id, method: 'ping', params: { text: `ünïcödé ${id} 🔥` } });

describe('bounded message reader: well-formed input', () => {
  it('delivers messages split at every byte, and many in one chunk, in order', async () => {
    const bytes = Buffer.concat([frame(ping(1)), frame(ping(2), 'Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n'), frame(ping(3))]);
    const split = open();
    await split.feed(...Array.from(bytes, (b) => Buffer.from([b])));
    const whole = open();
    await whole.feed(bytes);
    for (const r of [split, whole]) {
      assert.deepEqual(r.errors, []);
      assert.deepEqual(r.messages, [ping(1), ping(2), ping(3)]);
    }
  });

  it('accepts a body exactly at the limit and header names in any case', async () => {
    const message = { jsonrpc: '2.0', method: 'note', params: { pad: '' } };
    const overhead = JSON.stringify(message).length;
    const limit = 1000;
    message.params.pad = 'x'.repeat(limit - overhead);
    const r = open({ maxContentBytes: limit });
    await r.feed(Buffer.concat([raw(`content-length: ${limit}\r\n\r\n`), raw(JSON.stringify(message))]));
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.messages, [message]);
  });

  it('reports close when the stream ends', async () => {
    const r = open();
    await r.feed(frame(ping(1)));
    r.stream.end();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(r.closed, 1);
  });
});

const BAD_FRAMES: [string, Buffer, RegExp][] = [
  ['no Content-Length header', raw('Content-Type: application/vscode-jsonrpc\r\n\r\n{}'), /no Content-Length/],
  ['a JSON body with no header at all', raw(`${JSON.stringify(ping(1))}\r\n\r\n`), /malformed header line/],
  ['a non-numeric Content-Length', raw('Content-Length: ten\r\n\r\n{}'), /Content-Length must be a byte count, got "ten"/],
  ['a negative Content-Length', raw('Content-Length: -5\r\n\r\n{}'), /Content-Length must be a byte count, got "-5"/],
  ['a fractional Content-Length', raw('Content-Length: 2.5\r\n\r\n{}'), /Content-Length must be a byte count/],
  ['two Content-Length headers', raw('Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}'), /two Content-Length headers/],
  ['Content-Length 3e9 (over 64 MiB)', raw('Content-Length: 3000000000\r\n\r\n{'), /Content-Length 3000000000 is over the limit of 64 MiB/],
  ['Content-Length one byte over 64 MiB', raw(`Content-Length: ${64 * MIB + 1}\r\n\r\n`), /over the limit of 64 MiB/],
  ['a Content-Length shorter than the body', raw(`Content-Length: 10\r\n\r\n${JSON.stringify(ping(1))}`), /body is not JSON.*Content-Length may be wrong/],
  ['a body that is JSON but not an object', raw('Content-Length: 2\r\n\r\n[]'), /must be a JSON object, got an array/],
  ['a charset other than utf-8', raw('Content-Length: 2\r\nContent-Type: application/json; charset=utf-16\r\n\r\n{}'), /charset utf-16 is not supported/],
  ['a header with no end', raw(`X-Padding: ${'a'.repeat(9000)}`), /no message header end within 8192 bytes/],
];

describe('bounded message reader: framing errors', () => {
  for (const [label, bytes, expected] of BAD_FRAMES) {
    it(`${label}: one FramingError, and the messages after it are not read`, async () => {
      const r = open();
      await r.feed(frame(ping(1)), bytes, frame(ping(2)), frame(ping(3)));
      assert.equal(r.errors.length, 1, `errors: ${r.errors.map((e) => e.message).join('; ')}`);
      assert.ok(r.errors[0] instanceof FramingError);
      assert.match(r.errors[0]!.message, expected);
      // A wrong length can swallow the next frames; none of them may surface as a message.
      assert.deepEqual(r.messages, [ping(1)]);
    });
  }

  it('an oversized Content-Length is refused at the header, before its body is buffered', async () => {
    const r = open({ maxContentBytes: 1024 });
    await r.feed(raw('Content-Length: 2048\r\n\r\n'));
    assert.match(r.errors[0]?.message ?? '', /Content-Length 2048 is over the limit of 1024 bytes/);
  });

  it('a Content-Length longer than what follows: an error once the message stays incomplete', async () => {
    const r = open({ incompleteMessageMs: 50 });
    await r.feed(raw(`Content-Length: 500\r\n\r\n${JSON.stringify(ping(1))}`));
    assert.equal(r.errors.length, 0, 'not an error while the rest may still come');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!.message, /stayed incomplete for 50 ms \(\d+ of 500 announced bytes\)/);
    assert.deepEqual(r.messages, []);
  });

  it('a header that never ends: an error once it stays incomplete', async () => {
    const r = open({ incompleteMessageMs: 50 });
    await r.feed(raw('Content-Length: 2\r\n'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.match(r.errors[0]?.message ?? '', /stayed incomplete for 50 ms \(\d+ bytes of a header\)/);
  });

  it('a message split over time is not an error while each message completes', async () => {
    const r = open({ incompleteMessageMs: 150 });
    for (let id = 1; id <= 4; id++) {
      const bytes = frame(ping(id));
      await r.feed(bytes.subarray(0, 10));
      await new Promise((resolve) => setTimeout(resolve, 60));
      await r.feed(bytes.subarray(10));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(r.errors, []);
    assert.equal(r.messages.length, 4);
  });
});
