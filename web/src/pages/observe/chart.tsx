/** A line chart of several series with uplot (imported only by the lazily loaded metrics page). */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export const COLOURS = [
  '#6cb6ff',
  '#4ac26b',
  '#d4a72c',
  '#ff7b72',
  '#b4a1ff',
  '#39c5cf',
  '#f778ba',
  '#e6edf3',
];

export interface ChartSeries {
  label: string;
  points: [number, number][];
}

/** Series with their own timestamps aligned on the union of the timestamps (null where one has none). */
export function align(series: ChartSeries[]): uPlot.AlignedData {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    for (const [x, y] of s.points) col[index.get(x) as number] = y;
    return col;
  });
  return [xs, ...ys] as uPlot.AlignedData;
}

export function Chart({ series, title }: { series: ChartSeries[]; title: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fg = getComputedStyle(document.documentElement).getPropertyValue('--fg').trim() || '#e6edf3';
    const grid = getComputedStyle(document.documentElement).getPropertyValue('--border').trim() || '#3d444d';
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const plot = new uPlot(
      {
        width: Math.max(320, el.clientWidth),
        height: 320,
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: COLOURS[i % COLOURS.length] as string,
            width: 2,
            spanGaps: true,
          })),
        ],
        axes: [axis, axis],
        scales: { x: { time: true } },
        // The page's own legend (in the figure caption) names the series and their colours.
        legend: { show: false },
      },
      align(series),
      el,
    );
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(320, el.clientWidth), height: 320 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [series]);
  return <div class="chart" ref={box} role="img" aria-label={`Chart: ${title}`} data-testid="metric-chart" />;
}
