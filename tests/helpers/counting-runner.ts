// A session wrapper that counts `run` calls, to prove how many forwards a piece of work takes.
import type { DecoderSession, SessionRunner } from '../../server/src/runtime/decoder-session';

export interface CountedSession {
  session: DecoderSession;
  /** `run` calls so far; also the batch size of each. */
  runs: number[];
}

export function countRuns(session: DecoderSession): CountedSession {
  const counted: CountedSession = { session, runs: [] };
  counted.session = session.wrap(
    (inner): SessionRunner => ({
      run: (feeds, lent) => {
        counted.runs.push(Number(feeds.input_ids!.dims[0]));
        return inner.run(feeds, lent);
      },
      release: () => inner.release(),
    }),
  );
  return counted;
}
