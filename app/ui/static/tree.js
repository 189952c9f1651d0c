// The site -> level -> space -> equipment -> point tree, loaded one level at a time.

import { el, showProblem } from "./dom.js";
import { loadChildren, loadSites } from "./model.js";

export class ModelTree {
  /** ``onSelect(node)`` is called with {id, label, __typename, types} when a row is picked. */
  constructor(root, { onSelect, onError }) {
    this.root = root;
    this.onSelect = onSelect;
    this.onError = onError;
  }

  async reload() {
    this.root.replaceChildren(el("li", { class: "muted" }, "Loading..."));
    try {
      const sites = await loadSites();
      this.root.replaceChildren(
        ...(sites.length ? sites.map((s) => this.item(s, [])) : [el("li", { class: "muted" }, "No sites in the graph.")]),
      );
    } catch (error) {
      const box = el("li", { class: "problem" });
      showProblem(box, error);
      this.root.replaceChildren(box);
      this.onError?.(error);
    }
  }

  item(node, ancestors) {
    const leaf = node.__typename === "Point";
    const li = el("li", {
      role: "treeitem",
      class: `kind-${node.__typename}`,
      dataset: { id: node.id, kind: node.__typename },
      "aria-expanded": leaf ? null : "false",
    });
    const twisty = leaf
      ? el("span", { class: "twisty leaf" })
      : el("button", {
        class: "twisty", type: "button", "aria-label": `Expand ${node.label ?? node.id}`,
        onclick: () => this.toggle(li, node, ancestors),
      }, "▸");
    const label = el("a", {
      class: "label", href: `#${encodeURIComponent(node.id)}`, title: node.id,
      onclick: (event) => {
        event.preventDefault();
        this.select(li, node);
        if (!leaf && li.getAttribute("aria-expanded") === "false") this.toggle(li, node, ancestors);
      },
    }, node.label ?? node.id);
    const kind = el("span", { class: "badge", title: (node.types ?? []).join(", ") }, node.__typename);
    li.append(el("div", { class: "row" }, twisty, kind, label));
    return li;
  }

  select(li, node) {
    for (const old of this.root.querySelectorAll("[aria-selected=true]")) old.removeAttribute("aria-selected");
    li.setAttribute("aria-selected", "true");
    this.onSelect(node);
  }

  async toggle(li, node, ancestors) {
    const twisty = li.querySelector(":scope > .row > .twisty");
    if (li.getAttribute("aria-expanded") === "true") {
      li.setAttribute("aria-expanded", "false");
      twisty.textContent = "▸";
      li.querySelector(":scope > ul")?.remove();
      return;
    }
    li.setAttribute("aria-expanded", "true");
    twisty.textContent = "▾";
    const group = el("ul", { role: "group" }, el("li", { class: "muted" }, "Loading..."));
    li.append(group);
    try {
      const path = [...ancestors, node.id];
      // A model may link a node back to an ancestor; the tree does not follow such cycles.
      const children = (await loadChildren(node.id)).filter((c) => !path.includes(c.id));
      group.replaceChildren(
        ...(children.length ? children.map((c) => this.item(c, path)) : [el("li", { class: "muted" }, "(nothing inside)")]),
      );
      li.dataset.loaded = "true";
    } catch (error) {
      const box = el("li", { class: "problem" });
      showProblem(box, error);
      group.replaceChildren(box);
      this.onError?.(error);
    }
  }
}
