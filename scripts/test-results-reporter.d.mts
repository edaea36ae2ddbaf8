// Types of scripts/test-results-reporter.mjs, for the tests that import it.
export interface TestEvent {
  type: string;
  data?: Record<string, unknown>;
}
export default function testResultsReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string>;
