// Debian's python3 with python3-torch, for the tests that run PyTorch (the training recipe). Like
// Chromium for the end-to-end tests, a missing torch fails the test with what to install: it is
// never skipped, so CI (which installs it in .ci/run) always runs it.
import { spawnSync } from 'node:child_process';

/** `KILN_PYTHON` or Debian's interpreter: a pyenv or venv `python3` earlier on PATH usually lacks torch. */
export const PYTHON = process.env.KILN_PYTHON ?? '/usr/bin/python3';

/** torch's version; throws with the install command when the interpreter or torch is missing. */
export function requireTorch(): string {
  const r = spawnSync(PYTHON, ['-c', 'import torch, torch.distributed; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.status === 0) return r.stdout.trim();
  const why = r.error ? `${PYTHON} cannot run (${r.error.message})` : `${PYTHON} cannot import torch (${r.stderr.trim().split('\n').pop()})`;
  throw new Error(
    `The training recipe's test runs PyTorch and ${why}.\n` +
      'Install it: sudo apt-get update && sudo apt-get install -y python3-torch  (Debian; .ci/run does this), ' +
      'or point KILN_PYTHON at a python with torch.',
  );
}
