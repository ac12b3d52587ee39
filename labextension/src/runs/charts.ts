/**
 * Minimal SVG charts for the metrics view (no charting library: a few rects,
 * lines and labels that follow the theme through CSS classes).
 *
 * Each chart is drawn at the pixel width it is given (one SVG unit = one CSS
 * pixel, no viewBox scaling), so its text keeps the CSS font size in a narrow
 * sidebar and in a wide tab alike; the caller redraws it when its width changes.
 */

import { svg } from '../renderer/dom';

export interface SeriesPoint {
  label: string;
  completed: number;
  failed: number;
  other: number;
  /** 0..1, or null when no run finished in the bucket. */
  successRate: number | null;
}

/** Width used before the container has been laid out (e.g. while hidden). */
export const DEFAULT_CHART_WIDTH_PX = 260;
/** Narrower than this, the axis labels would overlap the bars: draw at this width and scroll. */
const MIN_CHART_WIDTH_PX = 160;
/** Roughly the advance of one label character at the charts' 10 px font. */
const LABEL_CHAR_PX = 6;

function chartWidth(widthPx: number): number {
  return Math.max(MIN_CHART_WIDTH_PX, Math.floor(widthPx > 0 ? widthPx : DEFAULT_CHART_WIDTH_PX));
}

/** An SVG drawn 1:1 in CSS pixels (so `font-size` in CSS is the size on screen). */
function chartRoot(width: number, height: number, ariaLabel: string): SVGElement {
  return svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'pj-chart', role: 'img', 'aria-label': ariaLabel });
}

/** Cut a label to what fits in `widthPx` (the full text stays in its tooltip). */
function fitLabel(label: string, widthPx: number): string {
  const chars = Math.max(4, Math.floor(widthPx / LABEL_CHAR_PX));
  return label.length > chars ? `${label.slice(0, chars - 1)}…` : label;
}

function niceMax(value: number): number {
  if (value <= 0) {
    return 1;
  }
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * magnitude) {
      return step * magnitude;
    }
  }
  return 10 * magnitude;
}

/** Stacked bars of runs per bucket (completed / failed / other) with a success-rate line, `widthPx` wide. */
export function runsOverTimeChart(points: SeriesPoint[], widthPx = DEFAULT_CHART_WIDTH_PX): SVGElement {
  const width = chartWidth(widthPx);
  const height = 150;
  const pad = { left: 28, right: 30, top: 10, bottom: 22 };
  const root = chartRoot(width, height, 'Runs and success rate over time');
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const maxRuns = niceMax(Math.max(0, ...points.map(p => p.completed + p.failed + p.other)));
  const y = (v: number): number => pad.top + plotH - (v / maxRuns) * plotH;
  root.appendChild(svg('line', { x1: pad.left, y1: pad.top + plotH, x2: pad.left + plotW, y2: pad.top + plotH, class: 'pj-chart-axis' }));
  root.appendChild(svg('text', { x: pad.left - 4, y: pad.top + 8, class: 'pj-chart-label', 'text-anchor': 'end' }, String(maxRuns)));
  root.appendChild(svg('text', { x: pad.left - 4, y: pad.top + plotH, class: 'pj-chart-label', 'text-anchor': 'end' }, '0'));
  root.appendChild(svg('text', { x: pad.left + plotW + 4, y: pad.top + 8, class: 'pj-chart-label pj-chart-rate-label' }, '100%'));
  root.appendChild(svg('text', { x: pad.left + plotW + 4, y: pad.top + plotH, class: 'pj-chart-label pj-chart-rate-label' }, '0%'));
  if (!points.length) {
    root.appendChild(svg('text', { x: width / 2, y: height / 2, class: 'pj-chart-empty', 'text-anchor': 'middle' }, 'No runs yet'));
    return root;
  }
  const slot = plotW / points.length;
  const barW = Math.max(2, Math.min(24, slot * 0.7));
  const ratePoints: string[] = [];
  points.forEach((p, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    let base = 0;
    for (const [value, cls] of [
      [p.completed, 'pj-chart-completed'],
      [p.failed, 'pj-chart-failed'],
      [p.other, 'pj-chart-other']
    ] as [number, string][]) {
      if (value > 0) {
        const rect = svg('rect', { x, y: y(base + value), width: barW, height: y(base) - y(base + value), class: cls });
        rect.appendChild(svg('title', {}, `${p.label}: ${value} ${cls.replace('pj-chart-', '')}`));
        root.appendChild(rect);
      }
      base += value;
    }
    if (p.successRate !== null) {
      ratePoints.push(`${pad.left + i * slot + slot / 2},${pad.top + plotH - p.successRate * plotH}`);
    }
  });
  if (ratePoints.length) {
    root.appendChild(svg('polyline', { points: ratePoints.join(' '), class: 'pj-chart-rate' }));
    for (const point of ratePoints) {
      const [cx, cy] = point.split(',');
      root.appendChild(svg('circle', { cx, cy, r: 2, class: 'pj-chart-rate-dot' }));
    }
  }
  const first = points[0].label;
  const last = points[points.length - 1].label;
  root.appendChild(svg('text', { x: pad.left, y: height - 6, class: 'pj-chart-label' }, first));
  if (points.length > 1) {
    root.appendChild(svg('text', { x: pad.left + plotW, y: height - 6, class: 'pj-chart-label', 'text-anchor': 'end' }, last));
  }
  return root;
}

export interface BarRow {
  label: string;
  values: { value: number; cls: string; title: string }[];
}

/** Horizontal grouped bars, one group per task (label above its bars), e.g. p50/p95, retries; `widthPx` wide. */
export function horizontalBars(rows: BarRow[], format: (v: number) => string, ariaLabel: string, widthPx = DEFAULT_CHART_WIDTH_PX): SVGElement {
  const width = chartWidth(widthPx);
  const rowH = 11;
  const labelH = 13;
  const gap = 6;
  const valueW = 56;
  const bars = Math.max(1, ...rows.map(r => r.values.length));
  const groupH = labelH + bars * rowH + gap;
  const height = Math.max(30, rows.length * groupH + 4);
  const root = chartRoot(width, height, ariaLabel);
  if (!rows.length) {
    root.appendChild(svg('text', { x: width / 2, y: 20, class: 'pj-chart-empty', 'text-anchor': 'middle' }, 'No data yet'));
    return root;
  }
  const max = Math.max(1e-9, ...rows.flatMap(r => r.values.map(v => v.value)));
  const plotW = width - valueW;
  rows.forEach((row, i) => {
    const top = 2 + i * groupH;
    const text = svg('text', { x: 0, y: top + labelH - 3, class: 'pj-chart-label pj-chart-row-label' }, fitLabel(row.label, width));
    text.appendChild(svg('title', {}, row.label));
    root.appendChild(text);
    row.values.forEach((v, k) => {
      const y = top + labelH + k * rowH;
      const w = Math.max(v.value > 0 ? 1 : 0, (v.value / max) * plotW);
      const rect = svg('rect', { x: 0, y, width: w, height: rowH - 2, class: v.cls });
      rect.appendChild(svg('title', {}, `${row.label} ${v.title}: ${format(v.value)}`));
      root.appendChild(rect);
      root.appendChild(svg('text', { x: w + 4, y: y + rowH - 3, class: 'pj-chart-label' }, format(v.value)));
    });
  });
  return root;
}
