"""Commands to devices: a durable queue per twin, in PostgreSQL.

States: ``queued`` -> ``delivered`` (sent to the online device) -> ``acknowledged`` (the
device accepted it) -> ``succeeded`` | ``failed``; a command not acknowledged within its
time-to-live becomes ``expired`` and is never sent again. Delivery is at least once and in
id order: when a device (re)connects it is sent every command still queued or delivered
but unacknowledged, so a device must treat command ids idempotently. An idempotency key
makes a retried request return the command it already created (409 if the retry asks for
something else).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from app.errors import AppError, ConflictError, InvalidInputError, NotFoundError
from app.events.model import Event
from app.telemetry.db import translate_errors
from app.twins.model import COMMAND_NAME, UNACKNOWLEDGED, Command, CommandState
from app.twins.schemas import check_value
from app.twins.store import Conn, TwinRef

if TYPE_CHECKING:
    from app.twins.service import TwinService

_COLUMNS = (
    "id, twin, name, input, state, idempotency_key, created, expires, delivered, "
    "acknowledged, finished, result, error, author, job"
)
MAX_KEY_LENGTH = 200


def _command(row: Sequence[Any]) -> Command:
    (id_, twin, name, input_, state, key, created, expires, delivered, acked, finished) = row[:11]
    result, error, author, job = row[11:]
    return Command(
        id=id_,
        twin=twin,
        name=name,
        input=input_,
        state=CommandState(state),
        idempotency_key=key,
        created=created,
        expires=expires,
        delivered=delivered,
        acknowledged=acked,
        finished=finished,
        result=result,
        error=error,
        author=author,
        job=job,
    )


class CommandService:
    def __init__(self, twins: TwinService) -> None:
        self._twins = twins
        self._pool = twins.pool

    @staticmethod
    def _event(ref: TwinRef, cmd: Command, *, ok: bool = True, **extra: Any) -> Event:
        """The event of ``cmd``'s state (published with the transaction that set it)."""
        data = {"command": cmd.id, "name": cmd.name, "state": cmd.state.value, **extra}
        return ref.event(f"command.{cmd.state.value}", data, ok=ok, author=cmd.author)

    def _skipped_delivery(self, ref: TwinRef, before: Command, after: Command) -> Event | None:
        """``command.delivered`` for a command the device answers while it is still queued:
        the sender marks a batch delivered after sending it, and a quick device can answer
        first. It was delivered all the same, and every answered command announces it once
        (``mark_delivered_many`` skips what is no longer queued)."""
        if before.state is not CommandState.QUEUED:
            return None
        return self._event(ref, replace(after, state=CommandState.DELIVERED))

    # -- queueing ----------------------------------------------------------------------------

    def send(
        self,
        key: str,
        *,
        name: str,
        input: Any = None,
        ttl_s: float | None = None,
        idempotency_key: str | None = None,
        author: str | None = None,
        job: int | None = None,
    ) -> tuple[Command, bool]:
        """Queue a command; (command, False) when the idempotency key names an existing one."""
        ref = self._twins.resolve(key)
        outcome = self.send_many(
            [ref.id],
            name=name,
            input=input,
            ttl_s=ttl_s,
            idempotency_key=idempotency_key,
            author=author,
            job=job,
        )[ref.id]
        if isinstance(outcome, AppError):
            raise outcome
        return outcome

    def send_many(
        self,
        twin_ids: Sequence[str],
        *,
        name: str,
        input: Any = None,
        ttl_s: float | None = None,
        idempotency_key: str | None = None,
        author: str | None = None,
        job: int | None = None,
    ) -> dict[str, tuple[Command, bool] | AppError]:
        """Queue the same command for many twins in one statement: per twin, (command,
        created) or the error that refused it. A bad request as a whole raises."""
        settings = self._twins.settings
        refs = self._twins.store.refs(list(twin_ids))
        out: dict[str, tuple[Command, bool] | AppError] = {}
        for twin_id in twin_ids:
            if twin_id not in refs:
                out[twin_id] = NotFoundError(f"No twin {twin_id!r}", code="twin_not_found")
        try:
            if not isinstance(name, str) or not COMMAND_NAME.match(name):
                raise InvalidInputError(
                    f"Command name {name!r} must be an identifier (letters, digits, _ . -)",
                    code="bad_command",
                )
            ttl = settings.default_command_ttl_s if ttl_s is None else ttl_s
            if not 0 < ttl <= settings.max_command_ttl_s:
                raise InvalidInputError(
                    f"ttl must be more than 0 and at most {settings.max_command_ttl_s:.0f} s",
                    code="bad_ttl",
                )
            if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_KEY_LENGTH:
                raise InvalidInputError(
                    f"An idempotency key has 1-{MAX_KEY_LENGTH} characters",
                    code="bad_idempotency_key",
                )
            check_value(f"the input of {name}", input, None)
        except AppError as exc:
            for ref in refs.values():
                self._twins.emit(
                    ref,
                    "command.queued",
                    {"code": exc.code, "detail": exc.detail},
                    ok=False,
                    author=author,
                )
            raise
        accepted = []
        for twin_id, actions in self._actions(list(refs)).items():
            try:
                if actions:
                    if name not in actions:
                        raise InvalidInputError(
                            f"Twin {twin_id!r} declares no action {name!r} "
                            f"(it has {', '.join(sorted(actions))})",
                            code="unknown_action",
                        )
                    check_value(
                        f"the input of {name}",
                        input,
                        actions[name].get("input"),
                        code="bad_command_input",
                    )
                accepted.append(twin_id)
            except AppError as exc:
                out[twin_id] = exc
                self._twins.emit(
                    refs[twin_id],
                    "command.queued",
                    {"code": exc.code, "detail": exc.detail},
                    ok=False,
                    author=author,
                )
        request_hash = hashlib.sha256(json.dumps([name, input, ttl], sort_keys=True).encode())
        digest = request_hash.hexdigest()
        with self._twins.changing("command queue") as box:
            conn = box.conn
            rows = conn.execute(
                f"INSERT INTO twin_commands (twin, name, input, idempotency_key, request_hash, "
                f"author, job, expires) SELECT t, %s, %s, %s, %s, %s, %s, clock_timestamp() + %s "
                f"FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n "
                f"ON CONFLICT (twin, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
                (
                    name,
                    Jsonb(input),
                    idempotency_key,
                    digest,
                    author,
                    job,
                    timedelta(seconds=ttl),
                    accepted,
                ),
            ).fetchall()
            created = {cmd.twin: cmd for cmd in map(_command, rows)}
            missing = [t for t in accepted if t not in created]
            existing = (
                conn.execute(
                    f"SELECT {_COLUMNS}, request_hash FROM twin_commands "  # noqa: S608
                    "WHERE twin = ANY(%s) AND idempotency_key = %s",
                    (missing, idempotency_key),
                ).fetchall()
                if missing
                else []
            )
            for cmd in sorted(created.values(), key=lambda c: c.id):
                expires = cmd.expires.isoformat()
                box.add(self._event(refs[cmd.twin], cmd, input=input, expires=expires))
        for row in existing:
            cmd = _command(row[:-1])
            if row[-1] == digest:
                out[cmd.twin] = (cmd, False)
            else:
                out[cmd.twin] = ConflictError(
                    f"Idempotency key {idempotency_key!r} was used for another command "
                    f"(#{cmd.id}) with a different request",
                    code="idempotency_key_reused",
                    command=cmd.id,
                )
        for cmd in sorted(created.values(), key=lambda c: c.id):
            out[cmd.twin] = (cmd, True)
        return out

    def _actions(self, twin_ids: list[str]) -> dict[str, dict[str, Any]]:
        with translate_errors("twin read"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, actions FROM twins WHERE id = ANY(%s)", (twin_ids,)
            ).fetchall()
        return {r[0]: dict(r[1] or {}) for r in rows}

    # -- reading -----------------------------------------------------------------------------

    def get(self, key: str, command_id: int) -> Command:
        ref = self._twins.resolve(key)
        with translate_errors("command read"), self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM twin_commands WHERE id = %s AND twin = %s",  # noqa: S608
                (command_id, ref.id),
            ).fetchone()
        if row is None:
            raise NotFoundError(
                f"Twin {ref.id!r} has no command {command_id}", code="command_not_found"
            )
        return _command(row)

    def find(
        self,
        key: str,
        *,
        states: Sequence[str] = (),
        after: int = 0,
        limit: int = 100,
    ) -> list[Command]:
        ref = self._twins.resolve(key)
        bad = [s for s in states if s not in CommandState.__members__.values()]
        if bad:
            raise InvalidInputError(
                f"Unknown command state(s) {', '.join(bad)}", code="bad_command_state"
            )
        sql = f"SELECT {_COLUMNS} FROM twin_commands WHERE twin = %s AND id > %s"  # noqa: S608
        params: list[Any] = [ref.id, after]
        if states:
            sql += " AND state = ANY(%s)"
            params.append(list(states))
        sql += f" ORDER BY id LIMIT {int(limit)}"
        with translate_errors("command read"), self._pool.connection() as conn:
            return [_command(r) for r in conn.execute(sql, params).fetchall()]

    def pending(self, twin_id: str, *, after: int = 0, resend: bool = True) -> list[Command]:
        """What the device should get, in order: queued commands, and (``resend``) delivered
        ones it has not acknowledged; expired ones never."""
        with translate_errors("command read"), self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM twin_commands WHERE twin = %s AND id > %s "  # noqa: S608
                "AND state = ANY(%s) AND expires > clock_timestamp() ORDER BY id",
                (twin_id, after, list(UNACKNOWLEDGED) if resend else ["queued"]),
            ).fetchall()
        return [_command(r) for r in rows]

    def pending_many(
        self, twin_ids: Sequence[str], *, resend: set[str]
    ) -> dict[str, list[Command]]:
        """``pending`` for many twins in one query (``resend``: the twins that get their
        delivered, unacknowledged commands again)."""
        with translate_errors("command read"), self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM twin_commands WHERE twin = ANY(%s) "  # noqa: S608
                "AND (state = 'queued' OR (state = 'delivered' AND twin = ANY(%s))) "
                "AND expires > clock_timestamp() ORDER BY id",
                (list(twin_ids), sorted(resend)),
            ).fetchall()
        out: dict[str, list[Command]] = {}
        for row in rows:
            cmd = _command(row)
            out.setdefault(cmd.twin, []).append(cmd)
        return out

    def mark_delivered(self, twin_id: str, ids: Sequence[int]) -> list[Command]:
        return self.mark_delivered_many(ids)

    def mark_delivered_many(self, ids: Sequence[int]) -> list[Command]:
        """Queued commands (of any twins) are now delivered; announces each."""
        if not ids:
            return []
        with self._twins.changing("command delivery") as box:
            rows = box.conn.execute(
                f"UPDATE twin_commands SET state = 'delivered', delivered = clock_timestamp() "
                f"WHERE id = ANY(%s) AND state = 'queued' RETURNING {_COLUMNS}",
                (list(ids),),
            ).fetchall()
            done = sorted((_command(r) for r in rows), key=lambda c: c.id)
            refs = self._twins.store.refs(sorted({c.twin for c in done}), box.conn)
            for cmd in done:
                if cmd.twin in refs:
                    box.add(self._event(refs[cmd.twin], cmd))
        return done

    def _locked(self, conn: Conn, twin_id: str, command_id: int) -> Command:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM twin_commands WHERE id = %s AND twin = %s FOR UPDATE",  # noqa: S608
            (command_id, twin_id),
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"Twin {twin_id!r} has no command {command_id}", code="command_not_found"
            )
        cmd = _command(row)
        if cmd.state is CommandState.EXPIRED:
            # The device answers too late: the user was already told it expired.
            raise ConflictError(
                f"Command {command_id} expired at {cmd.expires.isoformat()}",
                code="command_expired",
            )
        return cmd

    def acknowledge(
        self, twin_id: str, command_id: int, *, accepted: bool = True, error: str | None = None
    ) -> Command:
        """The device received the command and accepts it (or refuses it: failed)."""
        ref = self._twins.resolve(twin_id)
        with (
            self._twins.failing_as(ref, "command.acknowledged"),
            self._twins.changing("command ack") as box,
        ):
            cmd = self._locked(box.conn, ref.id, command_id)
            if cmd.state not in (CommandState.QUEUED, CommandState.DELIVERED):
                return cmd  # a repeated ack (at-least-once delivery): nothing to do
            new = "acknowledged" if accepted else "failed"
            row = box.conn.execute(
                f"UPDATE twin_commands SET state = %s, "
                "acknowledged = clock_timestamp(), "
                "delivered = coalesce(delivered, clock_timestamp()), "
                "finished = CASE WHEN %s THEN NULL ELSE clock_timestamp() END, "
                f"error = %s WHERE id = %s RETURNING {_COLUMNS}",
                (new, accepted, error, command_id),
            ).fetchone()
            assert row is not None
            done = _command(row)
            box.add(self._skipped_delivery(ref, cmd, done))
            box.add(self._event(ref, done, ok=accepted, error=error))
        return done

    def complete(
        self,
        twin_id: str,
        command_id: int,
        *,
        ok: bool,
        output: Any = None,
        error: str | None = None,
    ) -> Command:
        """The device's result: succeeded (``ok``) or failed."""
        ref = self._twins.resolve(twin_id)
        with self._twins.failing_as(ref, "command.succeeded" if ok else "command.failed"):
            check_value(f"the result of command {command_id}", output, None)
            with self._twins.changing("command result") as box:
                cmd = self._locked(box.conn, ref.id, command_id)
                if cmd.state.final:
                    if (cmd.state is CommandState.SUCCEEDED) == ok:
                        return cmd  # the same result again
                    raise ConflictError(
                        f"Command {command_id} already {cmd.state.value}",
                        code="command_finished",
                    )
                row = box.conn.execute(
                    "UPDATE twin_commands SET state = %s, finished = clock_timestamp(), "
                    "delivered = coalesce(delivered, clock_timestamp()), "
                    "acknowledged = coalesce(acknowledged, clock_timestamp()), "
                    f"result = %s, error = %s WHERE id = %s RETURNING {_COLUMNS}",
                    ("succeeded" if ok else "failed", Jsonb(output), error, command_id),
                ).fetchone()
                assert row is not None
                done = _command(row)
                box.add(self._skipped_delivery(ref, cmd, done))
                box.add(self._event(ref, done, ok=ok, result=output, error=error))
        return done

    def expire_due(self) -> list[Command]:
        """Expire unacknowledged commands past their time-to-live."""
        with self._twins.changing("command expiry") as box:
            rows = box.conn.execute(
                "UPDATE twin_commands SET state = 'expired', finished = clock_timestamp() "
                "WHERE state IN ('queued', 'delivered') AND expires <= clock_timestamp() "
                f"RETURNING {_COLUMNS}"
            ).fetchall()
            done = sorted((_command(r) for r in rows), key=lambda c: c.id)
            refs = self._twins.store.refs(sorted({c.twin for c in done}), box.conn)
            for cmd in done:
                if cmd.twin in refs:
                    expires = cmd.expires.isoformat()
                    box.add(self._event(refs[cmd.twin], cmd, ok=False, expires=expires))
        return done
