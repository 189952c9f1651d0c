// /explorer: the building tree, search, and the detail pane with a live chart.

import { DetailPane } from "./detail.js";
import { el, hideProblem, showProblem } from "./dom.js";
import { search } from "./model.js";
import { mountTokenForm } from "./token.js";
import { ModelTree } from "./tree.js";

const banner = document.getElementById("banner");
const results = document.getElementById("search-results");

function report(error) {
  if (error.isAuth) showProblem(banner, error);
}

const detail = new DetailPane(document.getElementById("detail"), { onError: report });
const tree = new ModelTree(document.getElementById("tree"), {
  onSelect: (node) => detail.show(node),
  onError: report,
});

async function runSearch(event) {
  event.preventDefault();
  const text = document.getElementById("search-text").value;
  const cls = document.getElementById("search-class").value;
  results.hidden = false;
  if (!text.trim() && !cls.trim()) {
    results.replaceChildren(el("p", { class: "muted" }, "Type part of a label, a class, or both."));
    return;
  }
  results.replaceChildren(el("p", { class: "muted" }, "Searching..."));
  try {
    const found = await search({ text, cls });
    const items = found.nodes.map((node) => el("li", { dataset: { id: node.id, kind: node.__typename } },
      el("span", { class: "badge" }, node.__typename), " ",
      el("a", {
        href: `#${encodeURIComponent(node.id)}`, title: `${node.id}\n${node.types.join(", ")}`,
        onclick: (e) => { e.preventDefault(); detail.show(node); },
      }, node.label ?? node.id)));
    results.replaceChildren(
      el("p", { id: "search-count", class: "muted" },
        `${found.nodes.length}${found.more ? "+" : ""} found`,
        el("button", { type: "button", class: "link", onclick: () => { results.hidden = true; } }, "close")),
      el("ul", { class: "plain links" }, items),
    );
  } catch (error) {
    const box = el("div", { class: "problem" });
    showProblem(box, error);
    results.replaceChildren(box);
    report(error);
  }
}

document.getElementById("search-form").addEventListener("submit", runSearch);
mountTokenForm(document.getElementById("token-form"), () => {
  hideProblem(banner);
  results.hidden = true;
  tree.reload();
  detail.refresh();
});
tree.reload();
if (location.hash.length > 1) detail.show({ id: decodeURIComponent(location.hash.slice(1)) });
