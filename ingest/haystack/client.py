"""A Haystack HTTP client: SCRAM login, about, read, hisRead, close (Zinc on the wire).

``HaystackClient.open(url, user, password)`` runs the Haystack auth handshake (HELLO ->
SCRAM -> BEARER authToken) and checks the server's SCRAM signature, so a server that does
not know the password cannot pose as the real one. Without a user the client sends no
credentials (servers that allow anonymous reads).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from types import TracebackType

import httpx

from app.security import scram
from ingest.haystack.values import Grid, HaystackParseError, HValue, Number, Record, Ref
from ingest.haystack.writers import make_grid, to_zinc
from ingest.haystack.zinc import parse_zinc

_ZINC = "text/zinc; charset=utf-8"


class HaystackClientError(Exception):
    """The server could not be reached, refused the login or answered an error grid."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _header_params(header: str) -> dict[str, str]:
    _, _, rest = header.strip().partition(" ")
    out: dict[str, str] = {}
    for part in rest.split(","):
        name, eq, value = part.strip().partition("=")
        if eq:
            out[name.strip()] = value.strip()
    return out


class HaystackClient:
    def __init__(self, base_url: str, *, token: str | None = None, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._token = token
        self._http = httpx.Client(timeout=timeout_s, headers={"Accept": _ZINC})

    @classmethod
    def open(
        cls,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout_s: float = 60.0,
    ) -> HaystackClient:
        client = cls(base_url, timeout_s=timeout_s)
        if username is not None:
            try:
                client.login(username, password or "")
            except BaseException:
                client._http.close()
                raise
        return client

    def __enter__(self) -> HaystackClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def token(self) -> str | None:
        return self._token

    # -- authentication ----------------------------------------------------------------

    def _auth_get(self, authorization: str) -> httpx.Response:
        try:
            return self._http.get(self.base_url + "about", headers={"Authorization": authorization})
        except httpx.HTTPError as exc:
            raise HaystackClientError(f"cannot reach {self.base_url}: {exc}") from exc

    def login(self, username: str, password: str) -> None:
        """HELLO -> SCRAM -> BEARER. A server that refuses a bare HELLO (400) or answers it
        with a server-first-message is asked again with the client-first-message in the
        HELLO (rusty-haystack's shortened flow)."""
        conversation = scram.ScramClient(username, password)
        first_data = scram.b64_header(conversation.first())
        user = scram.b64_header(username)
        hello = self._auth_get(f"HELLO username={user}")
        challenge = _header_params(hello.headers.get("www-authenticate", ""))
        if hello.status_code == 400 or "data" in challenge:
            # A server that wants the client-first-message in the HELLO (and makes up a
            # nonce without it): ask again with ours.
            hello = self._auth_get(f"HELLO username={user}, data={first_data}")
            challenge = _header_params(hello.headers.get("www-authenticate", ""))
        if hello.status_code != 401 or "handshakeToken" not in challenge:
            raise HaystackClientError(
                f"the server did not start a SCRAM handshake (HTTP {hello.status_code})",
                status=hello.status_code,
            )
        if challenge.get("hash", "").upper() != scram.HASH:
            raise HaystackClientError(f"unsupported SCRAM hash {challenge.get('hash')!r}")
        step = challenge
        if "data" not in step:
            first = self._auth_get(
                f"SCRAM handshakeToken={challenge['handshakeToken']}, data={first_data}"
            )
            step = _header_params(first.headers.get("www-authenticate", ""))
            if first.status_code != 401 or "data" not in step:
                raise HaystackClientError(
                    f"login refused at the first SCRAM step (HTTP {first.status_code})",
                    status=first.status_code,
                )
        try:
            final_message = conversation.final(scram.b64decode_any(step["data"]).decode())
        except (scram.ScramError, UnicodeDecodeError) as exc:
            raise HaystackClientError(f"bad SCRAM answer from the server: {exc}") from exc
        handshake = step.get("handshakeToken", challenge["handshakeToken"])
        final = self._auth_get(
            f"SCRAM handshakeToken={handshake}, data={scram.b64_header(final_message)}"
        )
        info = _header_params("x " + final.headers.get("authentication-info", ""))
        if final.status_code != 200 or "authToken" not in info:
            raise HaystackClientError(
                f"login failed for {username!r} (HTTP {final.status_code})",
                status=403 if final.status_code in (401, 403) else final.status_code,
            )
        if "data" in info:
            try:
                conversation.verify(scram.b64decode_any(info["data"]).decode())
            except (scram.ScramError, UnicodeDecodeError) as exc:
                raise HaystackClientError(f"the server failed SCRAM verification: {exc}") from exc
        self._token = info["authToken"]

    # -- ops ------------------------------------------------------------------------------

    def call(self, op: str, request: Grid | None = None, *, post: bool = True) -> Grid:
        """POST ``request`` (an empty grid when None) to ``op``; ``post=False`` sends a GET
        without arguments (about, ops, formats: some servers take only GET for those)."""
        headers = {"Content-Type": _ZINC}
        if self._token:
            headers["Authorization"] = f"BEARER authToken={self._token}"
        try:
            if post:
                body = to_zinc(request or make_grid([])).encode()
                response = self._http.post(self.base_url + op, content=body, headers=headers)
            else:
                response = self._http.get(self.base_url + op, headers=headers)
        except httpx.HTTPError as exc:
            raise HaystackClientError(f"{op}: cannot reach {self.base_url}: {exc}") from exc
        try:
            grid = parse_zinc(response.text)
        except (HaystackParseError, ValueError) as exc:
            raise HaystackClientError(
                f"{op}: the server answered HTTP {response.status_code} with no Zinc grid ({exc})",
                status=response.status_code,
            ) from exc
        if "err" in grid.meta or response.status_code != 200:
            dis = grid.meta.get("dis")
            raise HaystackClientError(
                f"{op}: {dis if isinstance(dis, str) else 'error'} (HTTP {response.status_code})",
                status=response.status_code,
            )
        return grid

    def about(self) -> Record:
        grid = self.call("about", post=False)
        return grid.rows[0] if grid.rows else {}

    def read(self, filter_text: str, limit: int | None = None) -> list[Record]:
        row: Record = {"filter": filter_text}
        if limit is not None:
            row["limit"] = Number(float(limit))
        return self.call("read", make_grid([row])).rows

    def read_ids(self, ids: Sequence[str]) -> list[Record]:
        return self.call("read", make_grid([{"id": Ref(i)} for i in ids])).rows

    def his_read(self, point_id: str, range_text: str, **extra: HValue) -> Grid:
        row: Record = {"id": Ref(point_id), "range": range_text, **extra}
        return self.call("hisRead", make_grid([row]))

    def close(self) -> None:
        """Close the session on the server (where it has a close op) and the connection."""
        try:
            if self._token:
                with contextlib.suppress(HaystackClientError):  # servers without close
                    self.call("close")
                self._token = None
        finally:
            self._http.close()
