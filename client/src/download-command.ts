// "Kiln: Download Model…": a preset code model (sizes, memory, measured latency; model/download/
// presets.ts) or any Hugging Face checkpoint into the extension's global storage under a
// cancellable progress notification, then the server's model check and an offer to switch to it.
// The download runs here in the extension host: the downloader is Node-only code shared with the
// CLI, VS Code's proxy settings apply to it, and it works while the server has no usable model.
import * as vscode from 'vscode';
import { describeProgress, describeVerification, downloadModel, type DownloadResult } from '../../server/src/model/download/download-model';
import { HubError, repoIdProblem } from '../../server/src/model/download/hub';
import { describePreset, MODEL_PRESETS, type ModelPreset } from '../../server/src/model/download/presets';
import { KilnValidateModelRequest } from '../../server/src/protocol';
import type { CommandDeps } from './commands';

interface ModelRequest {
  repo: string;
  revision?: string;
}

/** `owner/name` or `owner/name@revision`; a string is the problem with the text. */
export function parseModelRequest(text: string): ModelRequest | string {
  const [repo = '', revision, ...rest] = text.trim().split('@');
  if (rest.length > 0 || revision === '') return 'Write owner/name, or owner/name@revision';
  return repoIdProblem(repo) ?? { repo, revision };
}

/** The presets (with sizes, memory and measured latency) and a free-form repository id. */
async function pickModel(): Promise<ModelRequest | undefined> {
  type Item = vscode.QuickPickItem & { preset?: ModelPreset };
  const items: Item[] = [
    ...MODEL_PRESETS.map((preset) => ({ ...describePreset(preset), preset })),
    { label: '', kind: vscode.QuickPickItemKind.Separator },
    { label: 'Another model…', description: 'any Hugging Face model id (owner/name[@revision])' },
  ];
  const picked = await vscode.window.showQuickPick(items, {
    title: 'Kiln: Download Model',
    placeHolder: 'A code model to download',
    matchOnDescription: true,
    matchOnDetail: true,
    ignoreFocusOut: true,
  });
  if (!picked) return undefined;
  if (!picked.preset) return askModel();
  if (picked.preset.unsupported) {
    void vscode.window.showErrorMessage(`Kiln: ${picked.preset.unsupported}.`);
    return undefined;
  }
  return { repo: picked.preset.repo };
}

async function askModel(): Promise<ModelRequest | undefined> {
  const text = await vscode.window.showInputBox({
    title: 'Kiln: Download Model',
    prompt: 'A Hugging Face model id, optionally with @revision: a FIM-trained code model with safetensors weights',
    placeHolder: 'owner/name, e.g. Qwen/Qwen2.5-Coder-0.5B',
    ignoreFocusOut: true,
    validateInput: (value) => {
      const parsed = parseModelRequest(value);
      return typeof parsed === 'string' ? parsed : undefined;
    },
  });
  const parsed = text === undefined ? undefined : parseModelRequest(text);
  return typeof parsed === 'object' ? parsed : undefined;
}

/** The download under a progress notification; undefined when the user cancelled it. */
function download(deps: CommandDeps, request: ModelRequest, token: string | undefined): Thenable<DownloadResult | undefined> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Kiln: downloading ${request.repo}`, cancellable: true }, async (progress, cancel) => {
    const abort = new AbortController();
    const sub = cancel.onCancellationRequested(() => abort.abort());
    let shown = 0; // percent already reported: VS Code adds up increments
    try {
      return await downloadModel({
        ...request,
        storageDir: deps.storageUri.fsPath,
        baseUrl: deps.settings.get<string>('hubUrl') || undefined, // user or machine settings only
        token,
        signal: abort.signal,
        progressIntervalMs: 250,
        onProgress: (p) => {
          const percent = p.total ? (100 * p.bytes) / p.total : shown;
          progress.report({ message: describeProgress(p), increment: Math.max(0, percent - shown) });
          shown = Math.max(shown, percent);
        },
        onRetry: (err, attempt) => deps.output.appendLine(`Kiln download: ${err.message}; retry ${attempt}`),
      });
    } catch (err) {
      if (abort.signal.aborted) return undefined;
      throw err;
    } finally {
      sub.dispose();
    }
  });
}

/** A refusal a token could fix (the Hub answers 401 "not found" to anonymous requests for private repos). */
const needsToken = (err: unknown) => err instanceof HubError && (err.kind === 'auth' || err.kind === 'gated' || (err.kind === 'not-found' && err.status === 401));

async function askToken(message: string): Promise<string | undefined> {
  const token = await vscode.window.showInputBox({
    title: 'Kiln: Hugging Face token',
    prompt: `${message}. Enter a token to try again (used for this download only; "Kiln: Set Hugging Face Token…" or HF_TOKEN keeps one).`,
    password: true,
    ignoreFocusOut: true,
  });
  return token?.trim() || undefined;
}

async function offer(deps: CommandDeps, request: ModelRequest, result: DownloadResult): Promise<void> {
  const verification = describeVerification(result.manifest.files);
  let summary = result.alreadyComplete ? `already downloaded, ${verification}` : verification;
  const client = deps.client();
  if (client?.isRunning()) {
    const check = await client.sendRequest(KilnValidateModelRequest.type, { path: result.dir });
    if (!check.ok) {
      void vscode.window.showErrorMessage(`Kiln downloaded ${request.repo} to ${result.dir} but cannot use it: ${check.message}`);
      return;
    }
    summary = `${check.message}; ${verification}`;
  }
  const choice = await vscode.window.showInformationMessage(`Kiln: ${request.repo} is in ${result.dir} (${summary}).`, 'Use This Model');
  if (choice !== 'Use This Model') return;
  await vscode.workspace.getConfiguration('kiln').update('modelPath', result.dir, vscode.ConfigurationTarget.Global);
}

export async function downloadModelCommand(deps: CommandDeps): Promise<void> {
  const request = await pickModel();
  if (!request) return;
  let token = await deps.hubToken.get();
  try {
    let result: DownloadResult | undefined;
    try {
      result = await download(deps, request, token);
    } catch (err) {
      const retryToken = !token && needsToken(err) ? await askToken((err as Error).message) : undefined;
      if (!retryToken) throw err;
      token = retryToken;
      result = await download(deps, request, token);
    }
    if (!result) {
      void vscode.window.showInformationMessage(`Kiln: download of ${request.repo} cancelled; run Download Model… again to resume it.`);
      return;
    }
    deps.output.appendLine(
      `Kiln download: ${request.repo} → ${result.dir} (${result.manifest.files.length} files, ${result.fetchedBytes} bytes fetched, ${result.resumedBytes} resumed)`,
    );
    await offer(deps, request, result);
  } catch (err) {
    deps.output.appendLine(`Kiln download: ${(err as Error).message}`);
    void vscode.window.showErrorMessage(`Kiln: ${(err as Error).message}`);
  }
}
