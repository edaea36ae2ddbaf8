// Commands that read the whole repository (fine-tuning, showing what would be trained) refuse in
// Restricted Mode; the palette hides them there, but a keybinding or another extension can still run them.
import * as vscode from 'vscode';

/** True (and says why, once) when the workspace is not trusted. `what` completes "… is unavailable". */
export function refuseInRestrictedMode(what: string): boolean {
  if (vscode.workspace.isTrusted) return false;
  void vscode.window.showWarningMessage(`Kiln: ${what} is unavailable in Restricted Mode. Trust this workspace to use it.`, 'Manage Workspace Trust').then((c) => {
    if (c) void vscode.commands.executeCommand('workbench.trust.manage');
  });
  return true;
}
