// Small DOM helpers shared by the pages.

/** el("a", {href: "#", class: "x"}, "text", child) - attributes; "on*" keys add listeners. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** Fill ``box`` with an error: title, status, code and detail of a problem. */
export function showProblem(box, error) {
  const parts = [
    el("strong", { class: "problem-title" }, error.title ?? "Error"),
    " ",
    el("span", { class: "problem-code" },
      [error.status ? `${error.status}` : null, error.code].filter(Boolean).join(" ")),
    el("div", { class: "problem-detail" }, error.detail ?? String(error)),
  ];
  if (error.isAuth) {
    parts.push(el("div", { class: "problem-hint" },
      "Paste a bearer token above (create one with `twingraph token create --scope read`)."));
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}

export function hideProblem(box) {
  box.hidden = true;
  box.replaceChildren();
}

/** "2026-05-01T12:00:00.123456+00:00" -> local "12:00:00" (with the date if not today). */
export function formatTime(iso) {
  const when = new Date(iso);
  const today = new Date().toDateString() === when.toDateString();
  return today ? when.toLocaleTimeString() : when.toLocaleString();
}

export function formatValue(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(2);
  return String(value);
}
