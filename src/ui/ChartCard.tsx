// A chart with its title (<h4>), an accessible name, and the attributes exportChartsPng reads
// (data-title, data-legend), so an exported PNG carries the title and the legend.
import type { ReactNode } from 'react';
import type { LegendEntry } from './chart-export';

export type { LegendEntry } from './chart-export';

/** Series colours shared by the studio's charts. */
export const CHART_COLORS = ['#0969da', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#57606a', '#0a3069', '#d4a72c', '#2da44e', '#fb8f44', '#6e7781'];

export const chartColor = (i: number) => CHART_COLORS[((i % CHART_COLORS.length) + CHART_COLORS.length) % CHART_COLORS.length];

export interface ChartCardProps {
  title: string;
  /** the series as drawn (label and colour); also what the PNG export draws as the legend */
  legend?: LegendEntry[];
  /** a longer accessible description (defaults to the title) */
  description?: string;
  testId?: string;
  className?: string;
  children: ReactNode;
}

export function ChartCard({ title, legend, description, testId, className, children }: ChartCardProps) {
  return (
    <div className={className ?? 'chart-card'} data-title={title} data-legend={legend ? JSON.stringify(legend) : undefined} data-testid={testId}>
      <h4>{title}</h4>
      <div role="img" aria-label={description ? `${title}: ${description}` : title}>
        {children}
      </div>
    </div>
  );
}
