// Kiln in a desktop VS Code build through @vscode/test-electron, for machines that have one: it
// cannot download VS Code here, so it runs only when VSCODE_EXECUTABLE_PATH names a local build
// (extension.e2e.test.ts runs it then; or `node --import tsx tests/e2e/electron-runner.ts`).
// The extension under development is this repository; the suite is electron-suite.ts, bundled.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTests } from '@vscode/test-electron';
import { build } from 'esbuild';
import { ensureBuilt, REPO } from '../helpers/built-cli';
import { BEFORE_TYPING, cliCompletion, TYPED, writeE2eFixture } from '../helpers/e2e-fixture';
import { tempDir } from '../helpers/tiny-session';

export async function runInDesktopVsCode(vscodeExecutablePath: string): Promise<void> {
  ensureBuilt();
  const root = tempDir('kiln-electron-');
  try {
    const fixture = await writeE2eFixture(root);
    const completion = await cliCompletion(fixture, root, BEFORE_TYPING + TYPED);
    assert.ok(completion.trim().length > 0, 'the CLI answers a visible completion, so the comparison means something');
    // kiln.modelPath is machine-scoped: a desktop VS Code takes it from user settings, not the workspace's.
    const userData = join(root, 'user-data');
    mkdirSync(join(userData, 'User'), { recursive: true });
    writeFileSync(join(userData, 'User', 'settings.json'), JSON.stringify({ ...fixture.machineSettings, 'security.workspace.trust.enabled': false }, null, 2));
    const suite = join(root, 'suite.js');
    await build({
      entryPoints: [join(__dirname, 'electron-suite.ts')],
      outfile: suite,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      external: ['vscode'],
      logLevel: 'warning',
    });
    const code = await runTests({
      vscodeExecutablePath,
      extensionDevelopmentPath: REPO,
      extensionTestsPath: suite,
      launchArgs: [fixture.workspace, '--disable-extensions', `--user-data-dir=${userData}`],
      extensionTestsEnv: { KILN_E2E_FILE: fixture.file, KILN_E2E_TYPED: TYPED, KILN_E2E_EXPECTED: BEFORE_TYPING + TYPED + completion },
    });
    assert.equal(code, 0, `the suite in ${vscodeExecutablePath} exited with ${code}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const executable = process.env.VSCODE_EXECUTABLE_PATH;
  if (!executable) {
    console.error('Set VSCODE_EXECUTABLE_PATH to a local VS Code build (the `code` binary of an install or an unpacked archive).');
    process.exit(2);
  }
  runInDesktopVsCode(executable).then(
    () => console.log('Kiln passed in the desktop VS Code build.'),
    (err: unknown) => {
      console.error((err as Error).message);
      process.exit(1);
    },
  );
}
