"""The ended-session check in front of every authenticated route (no broker, no Redis)."""

from __future__ import annotations

import pytest
import redis

from gateway.auth import SessionCheck
from gateway.problems import Problem


class _Store:
    def __init__(self, ended: set[str] | None = None, broken: bool = False) -> None:
        self.ended, self.broken = ended or set(), broken

    def has_ended(self, session_id: str) -> bool:
        if self.broken:
            raise redis.ConnectionError("Redis went away")
        return session_id in self.ended


def _refused(check: SessionCheck, session_id: str) -> Problem:
    with pytest.raises(Problem) as refused:
        check.ensure_live(session_id)
    return refused.value


def test_an_ended_session_is_refused_and_a_live_one_passes() -> None:
    check = SessionCheck(_Store({"gone"}), ask_identity=lambda _: pytest.fail("no RPC"))
    check.ensure_live("live")
    problem = _refused(check, "gone")
    assert (problem.status, problem.code) == (401, "session_ended")


def test_without_redis_identity_is_asked() -> None:
    asked: list[str] = []
    check = SessionCheck(None, ask_identity=lambda sid: asked.append(sid) or sid == "gone")
    check.ensure_live("live")
    assert _refused(check, "gone").status == 401
    assert asked == ["live", "gone"]


def test_redis_away_fails_closed_with_a_retry() -> None:
    problem = _refused(SessionCheck(_Store(broken=True), ask_identity=lambda _: False), "any")
    assert (problem.status, problem.headers["Retry-After"]) == (503, "2")
