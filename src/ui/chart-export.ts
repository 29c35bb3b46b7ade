// Every recharts chart inside an element, drawn onto one PNG (white background) with each chart's
// title and legend. A chart's title comes from the `data-title` attribute of its wrapper (ChartCard
// puts one there) or else from the nearest heading before it; its legend from the wrapper's
// `data-legend` JSON ([{label, color}]) or else from recharts' HTML legend items, which are outside
// the SVG and so would be lost by serialising the SVG alone.
import { saveBlob } from './actions';

export interface LegendEntry {
  label: string;
  color: string;
  /** drawn dashed (e.g. the FP reference) */
  dashed?: boolean;
}

interface ChartShot {
  title: string;
  legend: LegendEntry[];
  svg: SVGSVGElement;
  width: number;
  height: number;
}

const FONT = 'system-ui, -apple-system, "Segoe UI", sans-serif';
const PAD = 12;
const GAP = 16;
const TITLE_PX = 14;
const LEGEND_PX = 12;
const LEGEND_ROW = 18;
const MAX_ROW_WIDTH = 1400;

/** The charts' main SVG surfaces under `root` (not the legend icons, which are SVGs too). */
function chartSurfaces(root: HTMLElement): SVGSVGElement[] {
  return ([...root.querySelectorAll('svg.recharts-surface')] as SVGSVGElement[]).filter((s) => !s.closest('.recharts-legend-wrapper, .recharts-legend-item'));
}

/** The last h1–h6 that comes before `el` in document order (inside `root`). */
function precedingHeading(root: HTMLElement, el: Element): string | null {
  let found: string | null = null;
  for (const h of root.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
    if (h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING) found = (h.textContent ?? '').trim() || found;
    else break;
  }
  return found;
}

function parseLegend(json: string | null): LegendEntry[] | null {
  if (!json) return null;
  try {
    const v = JSON.parse(json) as unknown;
    if (!Array.isArray(v)) return null;
    return v.filter((e): e is LegendEntry => !!e && typeof e === 'object' && typeof (e as LegendEntry).label === 'string').map((e) => ({ label: e.label, color: typeof e.color === 'string' ? e.color : '#57606a', dashed: !!e.dashed }));
  } catch {
    return null;
  }
}

/** recharts' own legend items next to this SVG: text and the icon's colour. */
function htmlLegend(svg: SVGSVGElement): LegendEntry[] {
  const wrapper = svg.closest('.recharts-wrapper') ?? svg.parentElement;
  if (!wrapper) return [];
  return [...wrapper.querySelectorAll('.recharts-legend-item')].map((item) => {
    const text = item.querySelector('.recharts-legend-item-text');
    const icon = item.querySelector('svg path, svg line, svg rect');
    const fromText = text instanceof HTMLElement ? text.style.color : '';
    const fromIcon = icon ? icon.getAttribute('stroke') || icon.getAttribute('fill') || '' : '';
    const color = [fromText, fromIcon].find((c) => c && c !== 'none') ?? '#57606a';
    return { label: (text?.textContent ?? item.textContent ?? '').trim(), color };
  }).filter((e) => e.label);
}

function shotOf(root: HTMLElement, svg: SVGSVGElement, index: number): ChartShot {
  const card = svg.closest('[data-title], [data-legend]');
  const title = card?.getAttribute('data-title') || precedingHeading(root, svg) || svg.getAttribute('aria-label') || `chart ${index + 1}`;
  const legend = parseLegend(svg.closest('[data-legend]')?.getAttribute('data-legend') ?? null) ?? htmlLegend(svg);
  const rect = svg.getBoundingClientRect();
  const width = Math.ceil(Number(svg.getAttribute('width')) || rect.width || 400);
  const height = Math.ceil(Number(svg.getAttribute('height')) || rect.height || 200);
  return { title, legend, svg, width, height };
}

function svgImage(svg: SVGSVGElement, width: number, height: number): Promise<HTMLImageElement> {
  const clone = svg.cloneNode(true) as SVGSVGElement;
  clone.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  clone.setAttribute('width', String(width));
  clone.setAttribute('height', String(height));
  // the page's CSS does not travel with the SVG: give the text the page's font
  clone.setAttribute('style', `${clone.getAttribute('style') ?? ''};font-family:${FONT};font-size:12px;background:white`);
  const url = URL.createObjectURL(new Blob([new XMLSerializer().serializeToString(clone)], { type: 'image/svg+xml;charset=utf-8' }));
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      URL.revokeObjectURL(url);
      resolve(img);
    };
    img.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error('a chart could not be rendered to an image'));
    };
    img.src = url;
  });
}

/** The legend laid out in rows of at most `width` px: [x, row] per entry, and the row count. */
function layoutLegend(ctx: CanvasRenderingContext2D, legend: LegendEntry[], width: number): { pos: [number, number][]; rows: number } {
  ctx.font = `${LEGEND_PX}px ${FONT}`;
  const pos: [number, number][] = [];
  let x = 0;
  let row = 0;
  for (const e of legend) {
    const w = 22 + ctx.measureText(e.label).width + 14;
    if (x > 0 && x + w > width) {
      x = 0;
      row++;
    }
    pos.push([x, row]);
    x += w;
  }
  return { pos, rows: legend.length ? row + 1 : 0 };
}

function truncate(ctx: CanvasRenderingContext2D, text: string, width: number): string {
  if (ctx.measureText(text).width <= width) return text;
  let t = text;
  while (t.length > 1 && ctx.measureText(`${t}…`).width > width) t = t.slice(0, -1);
  return `${t}…`;
}

/** Draw the charts of `root` onto one canvas (null when there are none). */
export async function renderChartsCanvas(root: HTMLElement, scale = Math.max(1, Math.min(2, globalThis.devicePixelRatio || 1))): Promise<HTMLCanvasElement | null> {
  const shots = chartSurfaces(root).map((svg, i) => shotOf(root, svg, i));
  if (shots.length === 0) return null;
  const images = await Promise.all(shots.map((s) => svgImage(s.svg, s.width, s.height)));
  const measure = document.createElement('canvas').getContext('2d');
  if (!measure) throw new Error('no 2D canvas in this browser');
  // each chart is a panel (title, legend, chart); panels flow left to right in rows
  const panels = shots.map((s) => {
    const legend = layoutLegend(measure, s.legend, s.width);
    return { ...s, legend, entries: s.legend, w: s.width + 2 * PAD, h: PAD + TITLE_PX + 8 + legend.rows * LEGEND_ROW + (legend.rows ? 4 : 0) + s.height + PAD };
  });
  const rowWidth = Math.max(MAX_ROW_WIDTH, ...panels.map((p) => p.w));
  const placed: { x: number; y: number }[] = [];
  let x = 0;
  let y = 0;
  let rowH = 0;
  let canvasW = 0;
  for (const p of panels) {
    if (x > 0 && x + p.w > rowWidth) {
      x = 0;
      y += rowH + GAP;
      rowH = 0;
    }
    placed.push({ x, y });
    x += p.w + GAP;
    rowH = Math.max(rowH, p.h);
    canvasW = Math.max(canvasW, x - GAP);
  }
  const canvasH = y + rowH;
  const canvas = document.createElement('canvas');
  canvas.width = Math.ceil(canvasW * scale);
  canvas.height = Math.ceil(canvasH * scale);
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('no 2D canvas in this browser');
  ctx.scale(scale, scale);
  ctx.fillStyle = 'white';
  ctx.fillRect(0, 0, canvasW, canvasH);
  panels.forEach((p, i) => {
    const { x: px, y: py } = placed[i];
    let cy = py + PAD;
    ctx.fillStyle = '#1b1f24';
    ctx.font = `600 ${TITLE_PX}px ${FONT}`;
    ctx.textBaseline = 'top';
    ctx.fillText(truncate(ctx, p.title, p.width), px + PAD, cy);
    cy += TITLE_PX + 8;
    ctx.font = `${LEGEND_PX}px ${FONT}`;
    ctx.textBaseline = 'middle';
    p.entries.forEach((e, k) => {
      const [lx, row] = p.legend.pos[k];
      const ex = px + PAD + lx;
      const ey = cy + row * LEGEND_ROW + LEGEND_ROW / 2;
      ctx.strokeStyle = e.color;
      ctx.lineWidth = 3;
      ctx.setLineDash(e.dashed ? [4, 3] : []);
      ctx.beginPath();
      ctx.moveTo(ex, ey);
      ctx.lineTo(ex + 16, ey);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = '#1b1f24';
      ctx.fillText(e.label, ex + 22, ey);
    });
    cy += p.legend.rows * LEGEND_ROW + (p.legend.rows ? 4 : 0);
    ctx.drawImage(images[i], px + PAD, cy, p.width, p.height);
  });
  return canvas;
}

/** Render every chart inside `root` (with its title and legend) to one PNG and download it as `name`. */
export async function exportChartsPng(root: HTMLElement, name: string): Promise<void> {
  const canvas = await renderChartsCanvas(root);
  if (!canvas) return;
  const blob = await new Promise<Blob | null>((r) => canvas.toBlob(r, 'image/png'));
  if (!blob) throw new Error('the charts could not be encoded as PNG');
  saveBlob(name.endsWith('.png') ? name : `${name}.png`, blob);
}
