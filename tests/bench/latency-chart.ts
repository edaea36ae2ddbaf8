// The per-keystroke latency chart of the keystroke benchmark, as a self-contained SVG: one series per
// row (latency in ms against keystroke index, log scale). Dense series are drawn as a rolling median
// (raw points would hide one another); sparse ones (cold runs every K-th keystroke) as dots.

export interface Series {
  name: string;
  color: string;
  /** [keystroke index, latency ms]. */
  points: [number, number][];
}

const WIDTH = 960;
const HEIGHT = 420;
const PAD = { left: 64, right: 180, top: 36, bottom: 48 };

/** The median of each window of `window` points ending at each point (x kept). */
export function rollingMedian(points: [number, number][], window: number): [number, number][] {
  return points.map(([k], i) => {
    const slice = points
      .slice(Math.max(0, i - window + 1), i + 1)
      .map((p) => p[1])
      .sort((a, b) => a - b);
    return [k, slice[slice.length >> 1]!];
  });
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function latencyChartSvg(title: string, series: Series[]): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) throw new Error('latency chart: no points');
  const maxX = Math.max(...all.map((p) => p[0]), 1);
  const minMs = Math.max(0.1, Math.min(...all.map((p) => p[1])));
  const maxMs = Math.max(...all.map((p) => p[1]));
  const lo = Math.floor(Math.log10(minMs));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(maxMs)));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (k: number) => PAD.left + (k / maxX) * plotW;
  const y = (ms: number) => PAD.top + plotH - ((Math.log10(Math.max(ms, 10 ** lo)) - lo) / (hi - lo)) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${PAD.left}" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  for (let e = lo; e <= hi; e++) {
    for (const m of [1, 2, 5]) {
      const ms = m * 10 ** e;
      if (ms < 10 ** lo || ms > 10 ** hi) continue;
      const yy = y(ms).toFixed(1);
      out.push(`<line x1="${PAD.left}" x2="${PAD.left + plotW}" y1="${yy}" y2="${yy}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`);
      out.push(`<text x="${PAD.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${ms >= 1 ? ms : ms.toFixed(1)}</text>`);
    }
  }
  const xStep = 10 ** Math.floor(Math.log10(maxX)) / (maxX / 10 ** Math.floor(Math.log10(maxX)) < 3 ? 2 : 1);
  for (let k = 0; k <= maxX; k += xStep) out.push(`<text x="${x(k).toFixed(1)}" y="${PAD.top + plotH + 16}" text-anchor="middle">${k}</text>`);
  out.push(`<text x="${PAD.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">keystroke</text>`);
  out.push(`<text x="16" y="${PAD.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${PAD.top + plotH / 2})">latency, ms (log scale)</text>`);
  out.push(`<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  // drawn last to first, so the first series (Kiln's) stays on top
  [...series].reverse().forEach((s) => {
    const i = series.indexOf(s);
    // sparse series (cold runs every K-th keystroke) read better as dots than as a line
    const dots = s.points.length < maxX / 4;
    if (dots) for (const [k, ms] of s.points) out.push(`<circle cx="${x(k).toFixed(1)}" cy="${y(ms).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    else
      out.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="1" stroke-opacity="0.85" points="${s.points.map(([k, ms]) => `${x(k).toFixed(1)},${y(ms).toFixed(1)}`).join(' ')}"/>`,
      );
    const ly = PAD.top + 14 + i * 18;
    out.push(`<rect x="${PAD.left + plotW + 12}" y="${ly - 8}" width="14" height="4" fill="${s.color}"/>`);
    out.push(`<text x="${PAD.left + plotW + 32}" y="${ly - 4}" dominant-baseline="middle">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
