// The status bar item: the p50 latency of model-computed answers, memory and execution provider; details
// (with the share of answers typed through) in the tooltip.
import * as vscode from 'vscode';
import type { KilnStats, ServerStatus } from '../../server/src/protocol';
import { statsLines, statusBarText } from './format';

export class KilnStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('kiln.status', vscode.StatusBarAlignment.Right, 100);
  private status: ServerStatus = { state: 'starting' };
  private stats: KilnStats | undefined;
  private enabled = true;

  constructor() {
    this.item.name = 'Kiln';
    this.item.command = 'kiln.showStats';
    this.render();
    this.item.show();
  }

  setStatus(status: ServerStatus): void {
    this.status = status;
    this.render();
  }

  setStats(stats: KilnStats): void {
    this.stats = stats;
    this.render();
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.render();
  }

  get lines(): string[] {
    return statsLines(this.status, this.stats);
  }

  private render(): void {
    this.item.text = statusBarText(this.status, this.stats, this.enabled);
    const tooltip = new vscode.MarkdownString(['**Kiln**', ...this.lines, this.enabled ? '' : 'Inline completions are off'].filter(Boolean).join('  \n'));
    this.item.tooltip = tooltip;
    this.item.backgroundColor = this.status.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
