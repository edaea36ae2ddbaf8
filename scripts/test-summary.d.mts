// Types of scripts/test-summary.mjs, for the tests that import it.
export interface TestResult {
  outcome: 'pass' | 'fail' | 'skip';
  file: string;
  path: string[];
  reason?: string;
}
export function readTestResults(file: string): TestResult[];
export function formatTestSummary(results: TestResult[], root: string): string;
