// Shared chart pieces. A rotated y-axis title in recharts anchors at its start by default, so a long
// title runs off the top of the plot; anchoring it at its middle keeps it inside the axis' height.
export function yAxisLabel(value: string, offset = 0) {
  return { value, angle: -90, position: 'insideLeft' as const, offset, style: { textAnchor: 'middle' as const } };
}
