// The detail pane: what an entity is and what it links to; for a point, a live chart.

import { getJson } from "./api.js";
import { el, formatTime, formatValue, showProblem } from "./dom.js";
import { loadDetail } from "./model.js";
import { LIVE_LABEL, watchReadings } from "./live.js";

const WINDOWS = [
  [900, "last 15 min"],
  [3600, "last hour"],
  [21600, "last 6 hours"],
];

const RELATIONS = [
  ["isPartOf", "Part of"],
  ["hasLocation", "Located in"],
  ["isPointOf", "Point of"],
  ["hasPart", "Parts"],
  ["isLocationOf", "Location of"],
  ["hasPoint", "Points"],
  ["feeds", "Feeds"],
  ["isFedBy", "Fed by"],
];

export class DetailPane {
  constructor(root, { onError }) {
    this.root = root;
    this.onError = onError;
    this.generation = 0;
    this.current = null;
    this.windowSeconds = WINDOWS[0][0];
    this.stopLive = null;
    this.chart = null;
  }

  /** Show ``node`` ({id, ...}); a later call supersedes an earlier one still loading. */
  async show(node) {
    const generation = ++this.generation;
    this.teardown();
    this.current = node;
    history.replaceState(null, "", `#${encodeURIComponent(node.id)}`);
    this.root.replaceChildren(el("p", { class: "muted" }, "Loading..."));
    try {
      const entity = await loadDetail(node.id);
      if (generation !== this.generation) return;
      if (!entity) {
        this.root.replaceChildren(el("p", { class: "problem" }, `Nothing in the graph is called ${node.id}.`));
        return;
      }
      this.render(entity);
      if (entity.__typename === "Point") await this.startPoint(entity, generation);
    } catch (error) {
      if (generation !== this.generation) return;
      const box = el("div", { class: "problem" });
      showProblem(box, error);
      this.root.replaceChildren(box);
      this.onError?.(error);
    }
  }

  refresh() {
    if (this.current) this.show(this.current);
  }

  teardown() {
    this.stopLive?.();
    this.stopLive = null;
    this.chart?.destroy();
    this.chart = null;
  }

  render(entity) {
    const parts = [
      el("h2", { id: "detail-label" }, entity.label ?? entity.id),
      el("p", {},
        el("span", { class: "badge" }, entity.__typename), " ",
        el("span", { id: "detail-types" }, entity.types.join(", "))),
      el("p", {}, el("code", { id: "detail-iri", class: "iri" }, entity.id)),
    ];
    if (entity.__typename === "Point") parts.push(this.pointSection(entity));
    const refs = entity.externalReferences ?? [];
    if (refs.length) {
      parts.push(el("h3", {}, "External references"), el("ul", { class: "plain" },
        refs.map((r) => el("li", {}, r.kind ?? "reference", r.timeseriesId ? `: ${r.timeseriesId}` : ""))));
    }
    for (const [field, title] of RELATIONS) {
      const related = entity[field] ?? [];
      if (!related.length) continue;
      parts.push(el("h3", {}, title), el("ul", { class: "plain links" }, related.map((r) => el("li", {},
        el("span", { class: "badge" }, r.__typename), " ",
        el("a", {
          href: `#${encodeURIComponent(r.id)}`, title: r.id,
          onclick: (event) => { event.preventDefault(); this.show(r); },
        }, r.label ?? r.id)))));
    }
    parts.push(el("details", {}, el("summary", {}, `All classes (${entity.classes.length})`),
      el("p", { class: "muted" }, entity.classes.join(", "))));
    if (entity.tags.length) parts.push(el("p", { class: "muted" }, `Tags: ${entity.tags.join(", ")}`));
    this.root.replaceChildren(...parts);
  }

  pointSection(entity) {
    const unit = entity.unit ? entity.unit.replace(/^unit:/, "") : "";
    const windowSelect = el("select", {
      id: "window", "aria-label": "Time window",
      onchange: () => {
        this.windowSeconds = Number(windowSelect.value);
        this.show(this.current);
      },
    }, WINDOWS.map(([seconds, label]) => el("option", {
      value: seconds, selected: seconds === this.windowSeconds,
    }, label)));
    const newest = entity.latest
      ? `newest stored: ${formatValue(entity.latest.value)} at ${formatTime(entity.latest.time)}`
      : "no readings stored yet";
    return el("section", { class: "point" },
      el("div", { class: "latest" },
        el("span", { id: "latest-value", class: "value" }, "–"), " ",
        el("span", { class: "unit" }, unit), " ",
        el("span", { id: "latest-time", class: "muted" }, newest)),
      el("div", { class: "chart-bar" },
        windowSelect, " ",
        el("span", { id: "live-state", class: "muted" }, LIVE_LABEL), " ",
        el("span", { class: "muted" }, `series ${entity.timeseriesUuid}`)),
      el("div", { id: "chart", class: "chart" }));
  }

  async startPoint(entity, generation) {
    const key = entity.timeseriesUuid;
    const start = new Date(Date.now() - this.windowSeconds * 1000).toISOString();
    const body = await getJson(`/points/${encodeURIComponent(key)}/readings?${new URLSearchParams({ start })}`);
    if (generation !== this.generation) return;
    // Loaded on first use: without the chart library the tree and search still work.
    const { ReadingsChart } = await import("./chart.js");
    if (generation !== this.generation) return;
    const unit = entity.unit ? entity.unit.replace(/^unit:/, "") : null;
    this.chart = new ReadingsChart(this.root.querySelector("#chart"), {
      label: entity.label ?? key, unit, windowSeconds: this.windowSeconds,
    });
    this.chart.replace(body.readings);
    const newest = body.readings.at(-1);
    if (newest) this.showLatest(newest);
    const liveState = this.root.querySelector("#live-state");
    this.stopLive = watchReadings(key, {
      after: newest?.time ?? body.start,
      onReadings: (readings) => {
        this.chart?.append(readings);
        this.showLatest(readings.at(-1));
        liveState.textContent = LIVE_LABEL;
      },
      onError: (error) => {
        liveState.textContent = `update failed (${error.code}): ${error.detail}; retrying`;
        this.onError?.(error);
      },
    });
  }

  showLatest(reading) {
    this.root.querySelector("#latest-value").textContent = formatValue(reading.value);
    this.root.querySelector("#latest-time").textContent = `at ${formatTime(reading.time)}`;
  }
}
