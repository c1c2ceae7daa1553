/**
 * Latency-over-time chart: an SVG built here, rendered to PNG with @resvg/resvg-js (text in
 * the system's DejaVu Sans, Debian's fonts-dejavu-core; any other sans-serif font will do).
 */
import { writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';

export interface ChartLine {
  label: string;
  color: string;
  /** Stroke dash pattern (e.g. "7 4"); solid unless given. */
  dash?: string;
  /** Seconds since the start of the load, latency in ms. */
  points: Array<{ t_s: number; latency_ms: number }>;
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  /** A horizontal line, e.g. the DESIGN target. */
  target?: { ms: number; label: string };
}

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (Math.abs(v) >= 1000 ? v.toLocaleString('en') : String(Number(v.toFixed(2))));

export function latencyChartSvg(lines: ChartLine[], o: ChartOptions): string {
  const W = 1200;
  const H = 650;
  const data = lines.map((l) => ({ ...l, points: l.points.filter((p) => Number.isFinite(p.t_s) && Number.isFinite(p.latency_ms)) }));
  // Legend: rows as wide as the plot, between the titles and the plot (more lines, more rows).
  const legendWidth = W - 100 - 40;
  const entries = data.map((d) => ({ label: `${d.label}${d.points.length ? '' : ' (no data)'}`, color: d.color, dash: d.dash ?? '', width: 60 + `${d.label}${d.points.length ? '' : ' (no data)'}`.length * 8.5 }));
  const legendRows: Array<typeof entries> = [[]];
  for (const e of entries) {
    const row = legendRows[legendRows.length - 1]!;
    if (row.length && row.reduce((a, r) => a + r.width, 0) + e.width > legendWidth) legendRows.push([e]);
    else row.push(e);
  }
  const m = { left: 100, right: 40, top: (o.subtitle ? 115 : 95) + (legendRows.length - 1) * 24, bottom: 80 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = data.flatMap((d) => d.points);
  const tMax = Math.max(1, ...all.map((p) => p.t_s));
  const yData = Math.max(10, ...all.map((p) => p.latency_ms));
  const yTop = Math.max(yData, o.target ? o.target.ms * 1.1 : 0) * 1.05;
  const xStep = niceStep(tMax, 10);
  const yStep = niceStep(yTop, 8);
  const xEnd = Math.ceil(tMax / xStep) * xStep;
  const yEnd = Math.ceil(yTop / yStep) * yStep;
  const x = (t: number) => m.left + (t / xEnd) * pw;
  const y = (v: number) => m.top + ph - (v / yEnd) * ph;

  const parts: string[] = [];
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="34" font-size="22" font-weight="bold" text-anchor="middle">${esc(o.title)}</text>`);
  if (o.subtitle) parts.push(`<text x="${W / 2}" y="62" font-size="15" fill="#444" text-anchor="middle">${esc(o.subtitle)}</text>`);
  for (let v = 0; v <= yEnd + 1e-9; v += yStep) {
    parts.push(`<line x1="${m.left}" y1="${y(v)}" x2="${m.left + pw}" y2="${y(v)}" stroke="#e3e3e3" stroke-width="1"/>`);
    parts.push(`<text x="${m.left - 10}" y="${y(v) + 5}" font-size="14" text-anchor="end">${fmt(v)}</text>`);
  }
  for (let t = 0; t <= xEnd + 1e-9; t += xStep) {
    parts.push(`<line x1="${x(t)}" y1="${m.top}" x2="${x(t)}" y2="${m.top + ph}" stroke="#f0f0f0" stroke-width="1"/>`);
    parts.push(`<text x="${x(t)}" y="${m.top + ph + 22}" font-size="14" text-anchor="middle">${fmt(t)}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333" stroke-width="1.2"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 22}" font-size="16" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(28 ${m.top + ph / 2}) rotate(-90)" font-size="16" text-anchor="middle">${esc(o.yLabel)}</text>`);
  if (o.target) {
    parts.push(`<line x1="${m.left}" y1="${y(o.target.ms)}" x2="${m.left + pw}" y2="${y(o.target.ms)}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="3 4"/>`);
    parts.push(`<text x="${m.left + pw - 8}" y="${y(o.target.ms) - 6}" font-size="13" fill="#c0392b" text-anchor="end">${esc(o.target.label)}</text>`);
  }
  const path = (pts: Array<{ t: number; v: number }>) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  for (const d of data) {
    if (d.points.length === 0) continue;
    const pts = d.points.map((p) => ({ t: p.t_s, v: p.latency_ms }));
    parts.push(`<path d="${path(pts)}" fill="none" stroke="${d.color}" stroke-width="${d.dash ? 1.6 : 2.6}"${d.dash ? ` stroke-dasharray="${d.dash}" opacity="0.85"` : ''}/>`);
    if (pts.length === 1) parts.push(`<circle cx="${x(pts[0]!.t)}" cy="${y(pts[0]!.v)}" r="4" fill="${d.color}"/>`);
  }
  legendRows.forEach((row, r) => {
    let lx = m.left + (pw - row.reduce((a, e) => a + e.width, 0)) / 2;
    const ly = m.top - 18 - (legendRows.length - 1 - r) * 24;
    for (const e of row) {
      parts.push(`<line x1="${lx}" y1="${ly - 5}" x2="${lx + 40}" y2="${ly - 5}" stroke="${e.color}" stroke-width="${e.dash ? 1.6 : 2.6}"${e.dash ? ` stroke-dasharray="${e.dash}"` : ''}/>`);
      parts.push(`<text x="${lx + 48}" y="${ly}" font-size="14">${esc(e.label)}</text>`);
      lx += e.width;
    }
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif">${parts.join('')}</svg>`;
}

export function writeLatencyChart(file: string, lines: ChartLine[], o: ChartOptions): void {
  const svg = latencyChartSvg(lines, o);
  const png = new Resvg(svg, { background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  writeFileSync(file, png);
}
