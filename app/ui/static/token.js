// The token box in the page header: paste a bearer token; it stays in sessionStorage.

import { getToken, setToken } from "./api.js";
import { el } from "./dom.js";

export function mountTokenForm(form, onChange) {
  const input = el("input", {
    id: "token-input", type: "password", placeholder: "Bearer token (optional)",
    "aria-label": "Bearer token", size: 24, autocomplete: "off",
  });
  const state = el("span", { id: "token-state", class: "muted" });
  const forget = el("button", { id: "token-forget", type: "button" }, "Forget");

  function render() {
    const has = Boolean(getToken());
    state.textContent = has ? "token set" : "anonymous";
    forget.hidden = !has;
    input.value = "";
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value);
    render();
    onChange();
  });
  forget.addEventListener("click", () => {
    setToken("");
    render();
    onChange();
  });
  form.replaceChildren(input, el("button", { id: "token-use", type: "submit" }, "Use"), forget, state);
  render();
}
