// `npm start` (after `npm run build`): Kiln on samples/workspace. With a local `code` CLI it opens an
// Extension Development Host; otherwise it starts code-server on 127.0.0.1 with this repository linked
// in as the extension and prints the URL. It stays in the foreground until Ctrl-C, then ends its
// whole process group and removes its temp folder.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { defaultModelPath } from '../server/src/default-model';
import {
  type CodeServerDirs,
  ensureCodeServer,
  findOnPath,
  linkExtension,
  makeCodeServerDirs,
  removeCodeServerDirs,
  REPO,
  type RunningCodeServer,
  startCodeServer,
  stopProcessGroup,
} from './code-server';

const WORKSPACE = join(REPO, 'samples', 'workspace');

function modelNote(): string | undefined {
  if (defaultModelPath()) return undefined;
  return (
    'Note: no embedded model under models/ yet, so Kiln will show "no model" in the status bar.\n' +
    '  Set "kiln.modelPath" in Settings to a Hugging Face model folder (e.g. Qwen2.5-Coder-0.5B),\n' +
    '  start with KILN_MODEL=<folder> npm start, or add the model under models/.'
  );
}

/** Resolves when the user presses Ctrl-C (or the process is asked to stop), or `child` exits. */
function untilInterrupted(child: ChildProcess): Promise<'signal' | 'exit'> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('signal'));
    process.once('SIGTERM', () => resolve('signal'));
    child.once('exit', () => resolve('exit'));
  });
}

async function withDesktopCode(code: string): Promise<number> {
  console.log(`Opening ${WORKSPACE} in an Extension Development Host (${code}); close the window or press Ctrl-C to stop.`);
  const child = spawn(code, ['--new-window', '--wait', `--extensionDevelopmentPath=${REPO}`, WORKSPACE], { stdio: 'inherit', detached: true });
  const why = await untilInterrupted(child);
  if (why === 'signal') await stopProcessGroup(child);
  return why === 'exit' ? (child.exitCode ?? 0) : 0;
}

async function withCodeServer(): Promise<number> {
  const cs = await ensureCodeServer();
  const dirs: CodeServerDirs = makeCodeServerDirs({}, 'kiln-start-');
  let server: RunningCodeServer | undefined;
  try {
    linkExtension(dirs, REPO);
    server = await startCodeServer(cs, { folder: WORKSPACE, dirs });
    console.log(`\nKiln is running in code-server: ${server.folderUrl}\nOpen it in a browser on this machine; press Ctrl-C here to stop.\n`);
    const why = await untilInterrupted(server.child);
    if (why === 'exit') {
      console.error(`code-server stopped by itself:\n${server.output().slice(-4000)}`);
      return 1;
    }
    return 0;
  } finally {
    console.log('Stopping code-server…');
    await server?.stop();
    removeCodeServerDirs(dirs);
  }
}

async function main(): Promise<number> {
  const note = modelNote();
  if (note) console.log(note);
  const code = process.env.KILN_USE_CODE_SERVER ? undefined : findOnPath('code');
  return code ? withDesktopCode(code) : withCodeServer();
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  },
);
