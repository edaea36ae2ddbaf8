// End to end: the packaged VSIX installed into a real VS Code (code-server 4.139.1, VS Code 1.139.1)
// with fresh user-data and extension folders, driven in Debian's Chromium by playwright-core.
// A seeded tiny model is written at test time; machine settings point `kiln.modelPath` at it, while the
// fixture workspace plants a hostile one that must be ignored (machine scope). It proves ghost text
// equals `kiln complete` for the same text and position, Tab accepts it, the status bar reports
// latency, memory and provider, and every palette command does its job (Fine-tune runs a few real
// steps on the workspace and its adapter lands in the extension's storage, not in the workspace's
// settings; with `kiln.backend.kind` set to a remote backend it offers to export the training data
// instead, and the export lands in the folder picked). A second run keeps workspace trust on with the folder untrusted: in Restricted Mode
// completions still come (from user-level settings only) and fine-tuning is not offered.
// code-server is installed into .kiln-dev/ on first use (2.5–4 minutes, once).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import {
  type CodeServerDirs,
  type CodeServerInstall,
  ensureCodeServer,
  installVsix,
  makeCodeServerDirs,
  processGroupAlive,
  removeCodeServerDirs,
  type RunningCodeServer,
  startCodeServer,
} from '../../scripts/code-server';
import { packageVsix } from '../../scripts/package-vsix';
import { runInDesktopVsCode } from './electron-runner';
import { ensureBuilt, REPO } from '../helpers/built-cli';
import { TOAST_CHARS } from '../../client/src/fine-tune-text';
import {
  BEFORE_TYPING,
  CLI_EQUIVALENT_SETTINGS,
  cliCompletion,
  type E2eFixture,
  FILE,
  PLAIN_TYPING_SETTINGS,
  TYPED,
  writeE2eFixture,
  writeWorkspace,
} from '../helpers/e2e-fixture';
import { scriptedEngine, startFakeInferenceServer } from '../helpers/fake-inference-server';
import { tempDir } from '../helpers/tiny-session';
import { waitUntil } from '../helpers/wait';
import { launchChromium, requireChromium, type StatusItem, StepRecorder, Workbench } from '../helpers/workbench';

const STATUS_ID = 'kiln-dev.kiln.kiln.status';
const root = tempDir('kiln-e2e-');
const vsix = join(root, 'kiln.vsix');
let fixture: E2eFixture;
let codeServer: CodeServerInstall;
let session: Session | undefined; // the code-server and browser the current test drives
let wb: Workbench;
let installed: string;
let expected: Promise<string>;
let readyBefore: StatusItem | undefined;

interface Session {
  dirs: CodeServerDirs;
  server?: RunningCodeServer;
  browser?: Browser;
  /** The installed extension's folder. */
  installed: string;
}

/** code-server's output and VS Code's own logs (the Kiln output channel among them), for a failure's report. */
function logs(): Record<string, string> {
  const found: Record<string, string> = { 'code-server.log': session?.server?.output() ?? '' };
  const logDir = session && join(session.dirs.userData, 'logs');
  if (!logDir || !existsSync(logDir)) return found;
  for (const path of readdirSync(logDir, { recursive: true, encoding: 'utf8' })) {
    if (path.endsWith('.log')) found[`vscode-${path.replace(/[/]+/g, '-')}`] = readFileSync(join(logDir, path), 'utf8');
  }
  return found;
}

const steps = new StepRecorder(join(REPO, 'test-output', 'e2e'), () => wb?.page, logs);

/** code-server's Machine settings: where its (remote) window reads machine-scoped settings from. */
const machineSettingsFile = (dirs: CodeServerDirs) => join(dirs.userData, 'Machine', 'settings.json');

/** Installs the VSIX into fresh folders with these settings, starts code-server on `folder` and opens it in Chromium. */
async function openSession(options: { userSettings?: Record<string, unknown>; folder: string; workspaceTrust?: boolean }): Promise<void> {
  const dirs = makeCodeServerDirs(options.userSettings, 'kiln-e2e-code-server-');
  mkdirSync(dirname(machineSettingsFile(dirs)), { recursive: true });
  writeFileSync(machineSettingsFile(dirs), JSON.stringify(fixture.machineSettings, null, 2));
  await installVsix(codeServer, dirs, vsix);
  const folders = readdirSync(dirs.extensions).filter((name) => name.startsWith('kiln-dev.kiln-'));
  assert.equal(folders.length, 1, `one Kiln folder in ${dirs.extensions}: ${folders.join(', ')}`);
  session = { dirs, installed: join(dirs.extensions, folders[0]!) };
  session.server = await startCodeServer(codeServer, { folder: options.folder, dirs, workspaceTrust: options.workspaceTrust });
  session.browser = await launchChromium();
  wb = await Workbench.open(session.browser, session.server.folderUrl);
}

async function closeSession(): Promise<void> {
  const s = session;
  session = undefined;
  if (!s) return;
  await s.browser?.close();
  const pgid = s.server?.child.pid;
  await s.server?.stop();
  removeCodeServerDirs(s.dirs);
  if (pgid !== undefined) assert.equal(processGroupAlive(pgid), false, 'code-server’s process group is gone');
}

/** Files named `name` anywhere under `dir`. */
function findFiles(dir: string, name: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((p) => p.split(/[/]/).at(-1) === name)
    .map((p) => join(dir, p));
}

const kilnStatus = () => wb.statusItem(STATUS_ID);

/** Types TYPED at the end of FILE, as the user does, and waits for exactly `completion` as ghost text. */
async function typeAndSeeGhostText(completion: string): Promise<void> {
  await wb.openFile(FILE);
  await wb.page.keyboard.press('Control+End');
  await wb.page.keyboard.type(TYPED, { delay: 80 });
  await waitUntil(
    `the ghost text to equal the CLI completion ${JSON.stringify(completion)}`,
    () => wb.ghostText(),
    (t) => t === completion,
    30_000,
  );
}
const READY = /^(ready|\d+ ms) · \d+ MB · CPU$/;

before(async () => {
  requireChromium();
  ensureBuilt();
  codeServer = await ensureCodeServer();
  [fixture] = await Promise.all([writeE2eFixture(root), packageVsix(vsix)]);
});

after(() => rmSync(root, { recursive: true, force: true }));

describe('Kiln packaged as a VSIX, in code-server', () => {
  before(async () => {
    await openSession({ folder: fixture.workspace });
    installed = session!.installed;
    // The CLI shipped in the VSIX: the same build as the extension, whatever happens to dist/ meanwhile.
    expected = cliCompletion(fixture, root, BEFORE_TYPING + TYPED, join(installed, 'dist', 'cli.js'));
    expected.catch(() => {}); // awaited (and reported) by the ghost-text test
  });

  after(() => closeSession());

  it('is installed from the VSIX with onnxruntime-node inside it, and its server gets ready on the CPU', () =>
    steps.step('server ready', async () => {
      const files = readdirSync(installed, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => relative(installed, join(e.parentPath, e.name)));
      for (const f of [
        'package.json',
        'dist/client.js',
        'dist/server.js',
        'dist/train-worker.js',
        'dist/dataset-worker.js',
        'dist/model-worker.js',
        'node_modules/onnxruntime-node/dist/index.js',
        'node_modules/onnxruntime-common/dist/cjs/index.js',
      ]) {
        assert.ok(files.includes(f), `${f} is in the installed extension`);
      }
      // Only the runtime pieces esbuild leaves out, and only this platform's native binary.
      const modules = files.filter((f) => f.startsWith('node_modules/'));
      assert.deepEqual(
        modules.filter((f) => !/^node_modules\/onnxruntime-(node|common)\//.test(f)),
        [],
      );
      const binaries = modules.filter((f) => f.includes('/bin/'));
      assert.ok(binaries.length > 0 && binaries.every((f) => f.startsWith(`node_modules/onnxruntime-node/bin/napi-v6/${process.platform}/${process.arch}/`)), binaries.join(', '));
      // Nothing above the extensions folder has node_modules, so "ready on CPU" means the server
      // loaded onnxruntime-node from inside the installed extension.
      readyBefore = await waitUntil('the Kiln status item to report ready', kilnStatus, (s) => !!s && READY.test(s.text), 90_000);
      assert.deepEqual(readyBefore!.icons, ['zap']);
      assert.match(readyBefore!.text, /^ready · /, 'no latency before the first completion');
    }));

  it('shows ghost text equal to `kiln complete` for the same text and position as the user types', () =>
    steps.step('ghost text', async () => {
      const completion = await expected;
      assert.ok(completion.trim().length > 0, 'the CLI answers a visible completion, so the comparison means something');
      await waitUntil('the Kiln server to be ready before typing', kilnStatus, (s) => !!s && READY.test(s.text), 90_000);
      await typeAndSeeGhostText(completion);
    }));

  it('updates the status bar after the completion: latency in ms, memory in MB, provider CPU', () =>
    steps.step('status after completion', async () => {
      const s = await waitUntil('a latency in the Kiln status item', kilnStatus, (s) => !!s && /^\d+ ms · \d+ MB · CPU$/.test(s.text), 15_000);
      assert.deepEqual(s!.icons, ['zap']);
      assert.notEqual(s!.text, readyBefore?.text);
    }));

  it('accepts the suggestion with Tab', () =>
    steps.step('tab accepts', async () => {
      const completion = await expected;
      await wb.page.keyboard.press('Tab');
      await wb.page.keyboard.press('Control+s');
      await waitUntil(
        'the saved file to hold the accepted suggestion',
        () => readFileSync(fixture.file, 'utf8'),
        (t) => t === BEFORE_TYPING + TYPED + completion,
        15_000,
      );
    }));

  it('Kiln: Show Stats writes the stats to the Kiln output', () =>
    steps.step('show stats', async () => {
      await wb.runCommand('Kiln: Show Stats');
      const text = await waitUntil(
        'the stats in the output panel',
        () => wb.outputText(),
        (t) => t.includes('Kiln stats') && /Latency: p50 \d+ ms/.test(t),
        15_000,
      );
      assert.match(text, /State: ready/);
      assert.match(text, /Execution provider: CPU/);
      assert.match(text, /Memory: weights \d+ MB, KV \d+ MB, RSS \d+ MB/);
    }));

  it('Kiln: Restart Server starts a new server that gets ready again', () =>
    steps.step('restart server', async () => {
      await wb.runCommand('Kiln: Restart Server');
      // A new server has no answers yet: the latency gives way to "ready".
      await waitUntil('the restarted server to report ready', kilnStatus, (s) => !!s && /^ready · \d+ MB · CPU$/.test(s.text), 60_000);
    }));

  it('Kiln: Toggle Inline Completions turns suggestions off, then on again', () =>
    steps.step('toggle', async () => {
      await wb.runCommand('Kiln: Toggle Inline Completions');
      await waitUntil('the status item to show completions off', kilnStatus, (s) => !!s && s.text === 'Kiln' && s.icons.includes('circle-slash'), 10_000);
      await waitUntil(
        'the "off" notification',
        () => wb.notifications(),
        (n) => n.some((m) => m.includes('Kiln inline completions off')),
        10_000,
      );
      await wb.runCommand('Kiln: Toggle Inline Completions');
      await waitUntil('the status item to show ready again', kilnStatus, (s) => !!s && READY.test(s.text), 10_000);
      await waitUntil(
        'the "on" notification',
        () => wb.notifications(),
        (n) => n.some((m) => m.includes('Kiln inline completions on')),
        10_000,
      );
    }));

  it('Kiln: Select Model… opens a folder dialog, and cancelling it changes nothing', () =>
    steps.step('select model', async () => {
      await wb.runCommand('Kiln: Select Model…');
      // In the browser, VS Code's open dialog is its own file picker in the quick input.
      const ok = wb.page.locator('.quick-input-widget .quick-input-action .monaco-button', { hasText: 'Use This Model' });
      await ok.waitFor({ state: 'visible', timeout: 15_000 });
      await wb.closeQuickInput();
      const machine = JSON.parse(readFileSync(machineSettingsFile(session!.dirs), 'utf8')) as Record<string, unknown>;
      assert.equal(machine['kiln.modelPath'], fixture.modelDir);
      assert.match((await kilnStatus())?.text ?? '', READY);
    }));

  it('Kiln: Show What Will Be Trained shows the dry-run report and writes every example to the extension’s storage', () =>
    steps.step('show training data', async () => {
      await wb.runCommand('Kiln: Show What Will Be Trained');
      await waitUntil(
        'the "examples from" notification',
        () => wb.notifications(),
        (n) => n.some((m) => /\d+ examples from \d+ files/.test(m)),
        60_000,
      );
      const editorText = await wb.page.locator('.editor-instance .view-lines').first().innerText();
      assert.match(editorText.replace(/\u00a0/g, ' '), /Fine-tune dataset \(dry run\)/);
      const storage = join(session!.dirs.userData, 'User', 'globalStorage');
      const dumps = readdirSync(storage, { recursive: true, encoding: 'utf8' })
        .filter((p) => /(^|\/)training-data\/[^/]+\.txt$/.test(p))
        .map((p) => join(storage, p));
      assert.equal(dumps.length, 1, `one dump in ${storage}`);
      assert.match(readFileSync(dumps[0]!, 'utf8'), /^Kiln training data for .*\n(.*\n)?═{8} example 1 of \d+ · (train|validation) · /);
    }));

  it('Kiln: Fine-tune on This Repository asks first, trains, keeps the adapter in the extension’s storage and switches completions to it', () =>
    steps.step('fine-tune', async () => {
      const before = readFileSync(fixture.settingsFile, 'utf8');
      await wb.runCommand('Kiln: Fine-tune on This Repository');
      assert.deepEqual(await wb.notificationButtons('fine-tune on workspace?'), ['Start', 'Show What Will Be Trained']);
      await wb.clickNotificationButton('fine-tune on workspace?', 'Start');
      const done = await waitUntil(
        'the "done" notification',
        () => wb.notifications(),
        (n) => n.some((m) => m.includes('fine-tune done')),
        120_000,
      );
      const toast = done.find((m) => m.includes('fine-tune done'))!;
      assert.ok(toast.length <= TOAST_CHARS, `the toast fits: ${toast}`);
      assert.ok((await wb.notificationButtons('fine-tune done')).includes('Show Details'));
      assert.equal(readFileSync(fixture.settingsFile, 'utf8'), before, 'the workspace settings are untouched');
      const storage = join(session!.dirs.userData, 'User', 'globalStorage');
      const adapter = findFiles(storage, 'adapter_config.json')
        .map(dirname)
        .find((d) => basename(d) === 'adapter');
      assert.ok(adapter, `the PEFT adapter is in the extension's global storage (${storage})`);
      await waitUntil('the server to be ready with the adapter', kilnStatus, (s) => !!s && READY.test(s.text), 60_000);
      await wb.runCommand('Kiln: Show Stats');
      await waitUntil(
        'the adapter in the stats',
        () => wb.outputText(),
        (t) => t.includes(`+ adapter ${basename(adapter)}`),
        30_000,
      );
    }));

  it('with a remote backend, Kiln: Fine-tune on This Repository offers to export the training data instead, into the folder picked', () =>
    steps.step('export for a cluster', async () => {
      const file = machineSettingsFile(session!.dirs);
      const machine = readFileSync(file, 'utf8');
      const out = join(root, 'cluster-export');
      mkdirSync(out, { recursive: true });
      writeFileSync(file, JSON.stringify({ ...JSON.parse(machine), 'kiln.backend.kind': 'openai' }, null, 2));
      try {
        // the settings file is watched: until the change arrives the command still asks to train here
        await waitUntil(
          'the export offer',
          async () => {
            await wb.runCommand('Notifications: Clear All Notifications');
            await wb.runCommand('Kiln: Fine-tune on This Repository');
            await waitUntil(
              'a fine-tune toast',
              () => wb.notifications(),
              (n) => n.some((m) => /remote openai backend|fine-tune on workspace\?/.test(m)),
              15_000,
            );
            return (await wb.notifications()).some((m) => m.includes('remote openai backend'));
          },
          (offered) => offered,
          60_000,
        );
        assert.deepEqual(await wb.notificationButtons('remote openai backend'), ['Export Training Data', 'Fine-tune Here']);
        await wb.clickNotificationButton('remote openai backend', 'Export Training Data');
        // In the browser, VS Code's open dialog is its own file picker in the quick input: type the folder, take it.
        const input = wb.page.locator('.quick-input-widget .quick-input-box input');
        await input.waitFor({ state: 'visible', timeout: 15_000 });
        // the dialog fills in its starting folder once it has listed it, which would overwrite a path typed before
        await waitUntil(
          'the dialog to start',
          () => input.inputValue(),
          (v) => v !== '',
          15_000,
        );
        const typed = `${out}/`;
        await waitUntil(
          'the dialog to be in the export folder',
          async () => {
            if ((await input.inputValue()) !== typed) await input.fill(typed);
            await new Promise((r) => setTimeout(r, 300));
            return input.inputValue();
          },
          (v) => v === typed,
          15_000,
        );
        await wb.page.locator('.quick-input-widget .quick-input-action .monaco-button', { hasText: 'Export Here' }).click();
        await waitUntil(
          'the "exported" notification',
          () => wb.notifications(),
          (n) => n.some((m) => /exported \d+ examples from \d+ files/.test(m)),
          60_000,
        );
        assert.deepEqual(readdirSync(out).sort(), ['manifest.json', 'train.jsonl', 'validation.jsonl']);
        assert.equal(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).workspace.root, fixture.workspace);
      } finally {
        writeFileSync(file, machine);
      }
    }));

  it('a remote backend chosen in the machine settings: the status bar says remote, the key command restarts the server with the key, the ghost text comes from that server', () =>
    steps.step('remote backend', async () => {
      const remote = await startFakeInferenceServer({ engine: scriptedEngine(['remote', 'Answer', '()', '\n', 'never']), modelName: 'served' });
      const machine = machineSettingsFile(session!.dirs);
      try {
        writeFileSync(machine, JSON.stringify({ ...fixture.machineSettings, 'kiln.backend.kind': 'llamacpp', 'kiln.backend.url': remote.url }, null, 2));
        await waitUntil('the status bar to say remote', kilnStatus, (s) => !!s && /^(ready|\d+ ms) · remote$/.test(s.text), 30_000);
        const key = `e2e-${Date.now()}`;
        await wb.runCommand('Kiln: Set Remote Backend API Key…');
        await waitUntil(
          'the key input box',
          () => wb.quickInputVisible(),
          (v) => v,
          10_000,
        );
        await wb.page.keyboard.type(key);
        await wb.page.keyboard.press('Enter');
        await waitUntil('the restarted server to be ready with the remote backend', kilnStatus, (s) => !!s && /^ready · remote$/.test(s.text), 60_000);
        await wb.openFile(FILE);
        await wb.page.keyboard.press('Control+End');
        await wb.page.keyboard.press('Enter');
        await wb.page.keyboard.type('z = ', { delay: 80 });
        await waitUntil(
          'the ghost text from the remote server',
          () => wb.ghostText(),
          (t) => t === 'remoteAnswer()',
          30_000,
        );
        assert.equal(remote.counts.bodies.at(-1)?.authorization, `Bearer ${key}`, 'the key from secret storage reached the server');
        await waitUntil('a remote latency in the status bar', kilnStatus, (s) => !!s && /^\d+ ms · remote$/.test(s.text), 15_000);
      } finally {
        writeFileSync(machine, JSON.stringify(fixture.machineSettings, null, 2));
        await remote.close();
      }
      await waitUntil('the status bar back to the local model', kilnStatus, (s) => !!s && READY.test(s.text), 30_000);
    }));
});

describe('Kiln in Restricted Mode (workspace trust on, the folder not trusted), in code-server', () => {
  let restrictedExpected: Promise<string>;

  before(async () => {
    // Everything Kiln needs is in user and machine settings; the workspace tries to turn completions
    // off, shorten them and point Kiln at another model, and none of it may count in Restricted Mode.
    const untrusted = writeWorkspace(root, 'untrusted-workspace', {
      'kiln.enable': { '*': false },
      'kiln.modelPath': join(root, 'hostile-model'),
      'kiln.maxTokens': 1,
      ...PLAIN_TYPING_SETTINGS,
    });
    const userSettings = {
      ...CLI_EQUIVALENT_SETTINGS,
      'security.workspace.trust.enabled': true,
      'security.workspace.trust.startupPrompt': 'never', // opens in Restricted Mode without asking
      'security.workspace.trust.banner': 'never',
    };
    await openSession({ userSettings, folder: untrusted.workspace, workspaceTrust: true });
    restrictedExpected = cliCompletion(fixture, root, BEFORE_TYPING + TYPED, join(session!.installed, 'dist', 'cli.js'));
    restrictedExpected.catch(() => {});
  });

  after(() => closeSession());

  it('still completes, with the user-level settings only', () =>
    steps.step('restricted: ghost text', async () => {
      const completion = await restrictedExpected;
      await waitUntil('the Kiln server to be ready in Restricted Mode', kilnStatus, (s) => !!s && READY.test(s.text), 90_000);
      await typeAndSeeGhostText(completion);
    }));

  it('does not offer "Fine-tune on This Repository"', () =>
    steps.step('restricted: no fine-tune', async () => {
      const commands = await wb.paletteCommands('Kiln: ', 'Kiln: Show Stats');
      assert.ok(commands.includes('Kiln: Show Stats'), commands.join(', '));
      assert.ok(!commands.includes('Kiln: Fine-tune on This Repository'), `fine-tuning is hidden: ${commands.join(', ')}`);
      assert.ok(!commands.includes('Kiln: Show What Will Be Trained'), `reading the repository for training is hidden: ${commands.join(', ')}`);
    }));
});

// The same extension in a desktop VS Code build, where a machine has one (none can be downloaded here).
const desktop = process.env.VSCODE_EXECUTABLE_PATH;
describe('Kiln in a desktop VS Code build (@vscode/test-electron)', { skip: desktop ? false : 'set VSCODE_EXECUTABLE_PATH to a local VS Code build to run it' }, () => {
  it('activates, accepts the suggestion `kiln complete` predicts, and runs its commands', () => runInDesktopVsCode(desktop!));
});
