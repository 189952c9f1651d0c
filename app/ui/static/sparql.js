// /explorer/sparql: a SPARQL editor for analysts, with the named queries as examples.

import { apiFetch, getJson } from "./api.js";
import { el, hideProblem, showProblem } from "./dom.js";
import { mountTokenForm } from "./token.js";

const QUERY_KEY = "twingraph.sparql.query";
const MAX_ROWS = 5000;
const DEFAULT_QUERY = `# Equipment with its points (prefixes brick:, rdfs:, ... are predeclared)
SELECT ?equipment ?label (COUNT(?point) AS ?points)
WHERE {
  ?equipment a/rdfs:subClassOf* brick:Equipment ;
             rdfs:label ?label .
  OPTIONAL { ?equipment brick:hasPoint ?point }
}
GROUP BY ?equipment ?label
ORDER BY ?label
LIMIT 100`;

const editor = document.getElementById("query");
const runButton = document.getElementById("run");
const statusBox = document.getElementById("status");
const errorBox = document.getElementById("error");
const resultsBox = document.getElementById("results");
const examples = document.getElementById("examples");
const exampleTitle = document.getElementById("example-title");
let prefixes = {};
let exampleQueries = [];

function compact(iri) {
  for (const [prefix, base] of Object.entries(prefixes)) {
    if (iri.startsWith(base) && iri.length > base.length) return `${prefix}:${iri.slice(base.length)}`;
  }
  return `<${iri}>`;
}

function cell(term) {
  if (!term) return el("td", { class: "unbound" });
  if (term.type === "uri") return el("td", { class: "iri", title: term.value }, compact(term.value));
  if (term.type === "bnode") return el("td", { class: "bnode" }, `_:${term.value}`);
  const note = term["xml:lang"] ? `@${term["xml:lang"]}` : term.datatype ? compact(term.datatype) : "";
  return el("td", { class: "literal", title: note }, term.value);
}

function renderBindings(body) {
  const vars = body.head.vars ?? [];
  const rows = body.results.bindings;
  const shown = rows.slice(0, MAX_ROWS);
  const table = el("table", { id: "results-table", class: "results" },
    el("thead", {}, el("tr", {}, vars.map((v) => el("th", {}, `?${v}`)))),
    el("tbody", {}, shown.map((row) => el("tr", {}, vars.map((v) => cell(row[v]))))));
  resultsBox.replaceChildren(table);
  if (rows.length > shown.length) {
    resultsBox.append(el("p", { class: "muted" }, `Showing the first ${MAX_ROWS} of ${rows.length} rows.`));
  }
  return `${rows.length} row${rows.length === 1 ? "" : "s"}`;
}

async function run() {
  const query = editor.value;
  sessionStorage.setItem(QUERY_KEY, query);
  hideProblem(errorBox);
  runButton.disabled = true;
  statusBox.textContent = "Running...";
  const started = performance.now();
  try {
    const response = await apiFetch("/sparql", {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        Accept: "application/sparql-results+json, text/turtle;q=0.9",
      },
      body: new URLSearchParams({ query }),
    });
    const seconds = response.headers.get("X-TwinGraph-Query-Seconds");
    const type = response.headers.get("content-type") ?? "";
    let summary;
    if (type.includes("sparql-results+json")) {
      const body = await response.json();
      if ("boolean" in body) {
        resultsBox.replaceChildren(el("p", { id: "ask-result", class: "ask" }, String(body.boolean)));
        summary = "ASK";
      } else {
        summary = renderBindings(body);
      }
    } else {
      const text = await response.text();
      resultsBox.replaceChildren(el("pre", { id: "graph-result", class: "graph" }, text));
      summary = `${type.split(";")[0]}, ${text.length} characters`;
    }
    const elapsed = ((performance.now() - started) / 1000).toFixed(3);
    statusBox.textContent = `${summary} in ${elapsed} s${seconds ? ` (query ${Number(seconds).toFixed(3)} s)` : ""}`;
  } catch (error) {
    statusBox.textContent = "Failed";
    resultsBox.replaceChildren();
    showProblem(errorBox, error);
    markPosition(error.problem);
  } finally {
    runButton.disabled = false;
  }
}

/** Put the cursor where the parser stopped (problem+json ``line``/``column``, 1-based). */
function markPosition(problem) {
  if (!problem?.line) return;
  const lines = editor.value.split("\n");
  const line = Math.min(problem.line, lines.length) - 1;
  let offset = lines.slice(0, line).reduce((sum, text) => sum + text.length + 1, 0);
  offset += Math.max(0, (problem.column ?? 1) - 1);
  editor.focus();
  editor.setSelectionRange(offset, Math.min(offset + 1, editor.value.length));
}

async function loadExamples() {
  try {
    const body = await getJson("/explorer/api/examples");
    prefixes = body.prefixes;
    exampleQueries = body.queries;
    examples.replaceChildren(
      el("option", { value: "" }, `(${exampleQueries.length} named queries)`),
      ...exampleQueries.map((q) => el("option", { value: q.name }, `${q.name}: ${q.title}`)),
    );
  } catch (error) {
    examples.replaceChildren(el("option", { value: "" }, "(named queries need a token)"));
    if (!error.isAuth) showProblem(errorBox, error);
  }
}

examples.addEventListener("change", () => {
  const chosen = exampleQueries.find((q) => q.name === examples.value);
  if (!chosen) return;
  editor.value = chosen.text;
  exampleTitle.textContent = chosen.description || chosen.title;
});
runButton.addEventListener("click", run);
editor.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    run();
  }
});
mountTokenForm(document.getElementById("token-form"), () => {
  hideProblem(errorBox);
  loadExamples();
});
editor.value = sessionStorage.getItem(QUERY_KEY) ?? DEFAULT_QUERY;
loadExamples();
