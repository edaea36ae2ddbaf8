// Types of scripts/test-peers.mjs, for the tests that import it.
export function stalePeerPackages(peersDir: string): string[];
export function ensureTestPeers(repoRoot: string): void;
