// Line charts as inline SVG: series of [x, y] points on shared axes, each point a <circle
// class="pt"> (the browser tests count them), a legend, and min/max tick labels.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART = { width: 640, height: 260, left: 56, right: 16, top: 16, bottom: 34 };

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceNumber(value) {
  if (!isFinite(value)) return "";
  const size = Math.abs(value);
  if (size !== 0 && (size < 0.001 || size >= 100000)) return value.toExponential(2);
  return String(+value.toPrecision(4));
}

// series: [{name, cls, points: [[x, y], ...]}]; xLabel names the x axis (step).
function drawChart(svg, series, xLabel) {
  const c = CHART;
  svg.setAttribute("viewBox", `0 0 ${c.width} ${c.height}`);
  svg.replaceChildren();
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    svg.appendChild(svgEl("text", { x: c.width / 2, y: c.height / 2, class: "empty" }, "no points yet"));
    return;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const sx = (x) => c.left + ((x - x0) / (x1 - x0)) * (c.width - c.left - c.right);
  const sy = (y) => c.height - c.bottom - ((y - y0) / (y1 - y0)) * (c.height - c.top - c.bottom);

  const axes = svgEl("g", { class: "axes" });
  axes.appendChild(svgEl("line", { x1: c.left, y1: sy(y0), x2: c.width - c.right, y2: sy(y0) }));
  axes.appendChild(svgEl("line", { x1: c.left, y1: sy(y0), x2: c.left, y2: c.top }));
  for (const y of [y0 + pad, (y0 + y1) / 2, y1 - pad]) {
    axes.appendChild(svgEl("line", { x1: c.left, y1: sy(y), x2: c.width - c.right, y2: sy(y), class: "grid" }));
    axes.appendChild(svgEl("text", { x: c.left - 6, y: sy(y) + 4, "text-anchor": "end" }, niceNumber(y)));
  }
  for (const x of [x0, x1]) {
    axes.appendChild(svgEl("text", { x: sx(x), y: c.height - c.bottom + 16, "text-anchor": "middle" }, niceNumber(x)));
  }
  axes.appendChild(svgEl("text", { x: (c.left + c.width) / 2, y: c.height - 4, "text-anchor": "middle" }, xLabel));
  svg.appendChild(axes);

  series.forEach((s, index) => {
    if (s.points.length === 0) return;
    const group = svgEl("g", { class: `series ${s.cls}`, "data-series": s.name });
    const path = s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
    group.appendChild(svgEl("polyline", { points: path }));
    for (const p of s.points) {
      const dot = svgEl("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, class: "pt" });
      dot.appendChild(svgEl("title", {}, `${s.name} at ${xLabel} ${p[0]}: ${niceNumber(p[1])}`));
      group.appendChild(dot);
    }
    const legendY = c.top + 14 * index;
    group.appendChild(svgEl("rect", { x: c.width - c.right - 130, y: legendY - 8, width: 10, height: 10 }));
    group.appendChild(svgEl("text", { x: c.width - c.right - 115, y: legendY + 1, class: "legend" }, s.name));
    svg.appendChild(group);
  });
}
