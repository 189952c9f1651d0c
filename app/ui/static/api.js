// Talking to the platform's public API with the caller's token (kept in sessionStorage).

const TOKEN_KEY = "twingraph.token";

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(token) {
  const clean = token.trim().replace(/^Bearer\s+/i, "");
  if (clean) sessionStorage.setItem(TOKEN_KEY, clean);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An RFC 9457 problem (REST) or the first GraphQL error, with its stable code. */
export class ApiError extends Error {
  constructor({ status, code, title, detail, problem = null }) {
    super(detail || title);
    this.status = status;
    this.code = code;
    this.title = title;
    this.detail = detail;
    this.problem = problem;
  }

  get isAuth() {
    return ["token_required", "invalid_token", "bad_auth_header", "insufficient_scope"]
      .includes(this.code) || this.status === 401 || this.status === 403;
  }
}

function withToken(headers) {
  const out = new Headers(headers);
  const token = getToken();
  if (token) out.set("Authorization", `Bearer ${token}`);
  return out;
}

export async function problemOf(response) {
  const type = response.headers.get("content-type") ?? "";
  const text = await response.text();
  let body = null;
  if (type.includes("json")) {
    try { body = JSON.parse(text); } catch { body = null; }
  }
  return new ApiError({
    status: response.status,
    code: body?.code ?? "http_error",
    title: body?.title ?? (response.statusText || `HTTP ${response.status}`),
    detail: body?.detail ?? text.slice(0, 2000),
    problem: body,
  });
}

/** fetch() with the token; a non-2xx answer is thrown as an ApiError. */
export async function apiFetch(path, init = {}) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: withToken(init.headers) });
  } catch (error) {
    throw new ApiError({
      status: 0, code: "network_error", title: "The platform did not answer",
      detail: String(error),
    });
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

export async function getJson(path) {
  const response = await apiFetch(path, { headers: { Accept: "application/json" } });
  return response.json();
}

export async function graphql(query, variables = {}) {
  const response = await apiFetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors?.length) {
    const first = body.errors[0];
    throw new ApiError({
      status: response.status,
      code: first.extensions?.code ?? "graphql_error",
      title: "GraphQL error",
      detail: first.message,
      problem: first,
    });
  }
  return body.data;
}
