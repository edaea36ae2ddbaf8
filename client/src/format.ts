// Status-bar and stats text, kept free of `vscode` so it is unit-testable.
import type { KilnStats, RemoteTimings, ServerStatus } from '../../server/src/protocol';

export function formatBytes(bytes: number): string {
  if (bytes >= 10 * 2 ** 30) return `${(bytes / 2 ** 30).toFixed(0)} GB`;
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GB`;
  return `${Math.round(bytes / 2 ** 20)} MB`;
}

export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

const PROVIDER_LABEL: Record<string, string> = { cpu: 'CPU', webgpu: 'WebGPU', cuda: 'CUDA' };

export function providerLabel(provider: string | undefined): string {
  return provider ? (PROVIDER_LABEL[provider] ?? provider) : '';
}

/** The memory figure the user cares about: VRAM on a GPU (labelled), RSS otherwise. */
export function memoryLabel(stats: KilnStats): string | undefined {
  const m = stats.memory;
  if (!m) return undefined;
  if (m.vramBytes !== undefined) return `${formatBytes(m.vramBytes)} VRAM`;
  return formatBytes(m.rssBytes);
}

/**
 * Share of the recent answers that typing through a suggestion already shown served without model
 * work, or undefined before any answer.
 */
export function typedThroughShare(stats: KilnStats): number | undefined {
  const recent = Object.values(stats.answersBySource).reduce((sum, n) => sum + n, 0);
  return recent > 0 ? (stats.answersBySource['typing-through'] ?? 0) / recent : undefined;
}

/** e.g. `$(zap) 38 ms · 312 MB · CPU`, the latency being the p50 of model-computed answers. */
export function statusBarText(status: ServerStatus, stats: KilnStats | undefined, enabled: boolean): string {
  if (!enabled) return '$(circle-slash) Kiln';
  if (status.state === 'error') return '$(error) Kiln';
  if (status.state !== 'ready') return '$(loading~spin) Kiln';
  const training = stats?.training;
  if (training && training.state === 'running') {
    const step = training.totalSteps ? `${training.step ?? 0}/${training.totalSteps}` : `${training.step ?? 0}`;
    return `$(flame) step ${step}${training.loss !== undefined ? ` · loss ${training.loss.toFixed(3)}` : ''}`;
  }
  // Typing-through answers take ~0 ms and are left out of p50Ms, so the figure is what the model costs.
  const latency = stats?.p50Ms;
  const head = latency !== undefined ? formatMs(latency) : 'ready';
  // A remote backend: its latency, and "remote" where local memory and the provider would be (they say nothing about it).
  if (status.backend) return `${status.message ? '$(warning)' : '$(zap)'} ${head} · remote`;
  const memory = stats ? memoryLabel(stats) : undefined;
  return `$(zap) ${[head, memory, providerLabel(status.executionProvider)].filter(Boolean).join(' · ')}`;
}

/** Lines of the stats view and the tooltip. */
export function statsLines(status: ServerStatus, stats: KilnStats | undefined): string[] {
  const lines = [`State: ${status.state}${status.message ? ` — ${status.message}` : ''}`];
  if (status.model) lines.push(`Model: ${status.model}${stats?.adapter ? ` + adapter ${stats.adapter}` : ''}${status.weights ? ` (${status.weights} weights)` : ''}`);
  if (status.backend) lines.push(`Backend: remote — ${status.backend} (the prompt window is sent there; the local model builds the prompt)`);
  else if (status.executionProvider) lines.push(`Execution provider: ${providerLabel(status.executionProvider)}`);
  const remote = stats?.last?.remote;
  if (status.backend && remote) lines.push(remoteLine(remote));
  if (stats) {
    const modelAnswers = stats.answersBySource.model ?? 0;
    if (stats.p50Ms !== undefined)
      lines.push(
        `Latency: p50 ${formatMs(stats.p50Ms)}, p95 ${formatMs(stats.p95Ms ?? stats.p50Ms)} over the last ${modelAnswers} model-computed ${modelAnswers === 1 ? 'answer' : 'answers'}`,
      );
    const typed = typedThroughShare(stats);
    if (typed !== undefined) lines.push(`Typed through: ${(typed * 100).toFixed(0)}% of recent answers came from a suggestion already shown (no model work)`);
    if (stats.reuseRatio !== undefined) lines.push(`KV reuse: ${(stats.reuseRatio * 100).toFixed(1)}% of prompt tokens`);
    if (stats.decodeTokensPerSecond !== undefined) lines.push(`Decode: ${stats.decodeTokensPerSecond.toFixed(0)} tokens/s`);
    const sources = Object.entries(stats.answersBySource).filter(([, n]) => n > 0);
    if (sources.length) lines.push(`Answers: ${sources.map(([s, n]) => `${s} ${n}`).join(', ')}`);
    const m = status.backend ? undefined : stats.memory;
    if (m) {
      const vram = m.vramBytes !== undefined ? `, VRAM ${formatBytes(m.vramBytes)}` : '';
      lines.push(`Memory: weights ${formatBytes(m.weightBytes)}, KV ${formatBytes(m.kvBytes)}, RSS ${formatBytes(m.rssBytes)}${vram}`);
    }
    const t = stats.training;
    if (t)
      lines.push(
        `Training: ${t.state}${t.step !== undefined ? `, step ${t.step}${t.totalSteps ? `/${t.totalSteps}` : ''}` : ''}${t.loss !== undefined ? `, loss ${t.loss.toFixed(4)}` : ''}`,
      );
  }
  return lines;
}

/** The last remote answer: the request's wall time and, where the server reports them, its own timings. */
export function remoteLine(remote: RemoteTimings): string {
  const parts = [`request ${formatMs(remote.requestMs)}`];
  if (remote.firstPieceMs !== undefined) parts.push(`first piece ${formatMs(remote.firstPieceMs)}`);
  if (remote.stoppedEarly) parts.push('stopped early by Kiln');
  const s = remote.server;
  const server: string[] = [];
  if (s?.promptMs !== undefined) server.push(`prompt ${s.promptTokens !== undefined ? `${s.promptTokens} tokens ` : ''}${formatMs(s.promptMs)}`);
  if (s?.cachedTokens !== undefined) server.push(`${s.cachedTokens} cached`);
  if (s?.predictedMs !== undefined) server.push(`generated ${s.predictedTokens !== undefined ? `${s.predictedTokens} tokens ` : ''}${formatMs(s.predictedMs)}`);
  if (s?.totalMs !== undefined) server.push(`total ${formatMs(s.totalMs)}`);
  return `Remote (last answer): ${parts.join(', ')}${server.length ? `; server: ${server.join(', ')}` : ''}`;
}
