// A point's readings as a time-series chart (uPlot, served from ui/node_modules).

import uPlot from "/explorer/vendor/uPlot.esm.js";

const HEIGHT = 300;

/** Numbers as they are, booleans as 1/0; strings and nulls leave a gap. */
export function numeric(value) {
  if (typeof value === "number") return value;
  if (typeof value === "boolean") return value ? 1 : 0;
  return null;
}

export class ReadingsChart {
  /** Keeps the last ``windowSeconds`` of readings; ``data-count`` etc. on the container say
   * what is plotted (for people inspecting the page and for the browser test). */
  constructor(container, { label, unit, windowSeconds }) {
    this.container = container;
    this.windowSeconds = windowSeconds;
    this.times = [];
    this.values = [];
    this.plot = new uPlot(
      {
        width: this.width(),
        height: HEIGHT,
        scales: { x: { time: true } },
        series: [
          {},
          {
            label: unit ? `${label} (${unit})` : label,
            stroke: "#1d4ed8",
            fill: "rgba(29, 78, 216, 0.08)",
            width: 2,
            spanGaps: false,
          },
        ],
        axes: [{}, { label: unit ?? "", size: 60 }],
      },
      [[], []],
      container,
    );
    this.onResize = () => this.plot.setSize({ width: this.width(), height: HEIGHT });
    window.addEventListener("resize", this.onResize);
  }

  width() {
    return Math.max(320, this.container.clientWidth || 640);
  }

  replace(readings) {
    this.times = [];
    this.values = [];
    this.append(readings);
  }

  /** Readings oldest first, each {time: RFC 3339, value}. */
  append(readings) {
    for (const reading of readings) {
      this.times.push(Date.parse(reading.time) / 1000);
      this.values.push(numeric(reading.value));
    }
    const cutoff = Date.now() / 1000 - this.windowSeconds;
    let drop = 0;
    while (drop < this.times.length - 1 && this.times[drop] < cutoff) drop += 1;
    if (drop) {
      this.times.splice(0, drop);
      this.values.splice(0, drop);
    }
    this.plot.setData([this.times, this.values]);
    const last = this.times.length - 1;
    this.container.dataset.count = String(this.times.length);
    this.container.dataset.lastTime = last >= 0 ? new Date(this.times[last] * 1000).toISOString() : "";
    this.container.dataset.lastValue = last >= 0 ? String(this.values[last]) : "";
  }

  destroy() {
    window.removeEventListener("resize", this.onResize);
    this.plot.destroy();
  }
}
