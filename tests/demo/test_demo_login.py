"""Issue 13, item 7: the demo's login slows down repeated failures, uploads are capped, the README says what --auth is."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapt.demo.login import ThrottledLogin

REPO = Path(__file__).resolve().parents[2]


def attempts(login: ThrottledLogin, tries: list[tuple[str, str]]) -> tuple[list[bool], list[float]]:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    login._sleep = fake_sleep
    results = [asyncio.run(login(user, password)) for user, password in tries]
    return results, waits


def test_failed_logins_are_delayed_more_and_more_until_one_succeeds():
    login = ThrottledLogin("demo", "s3cret", free=3, max_delay=8)
    wrong = [("demo", "guess")] * 8
    results, waits = attempts(login, [*wrong, ("demo", "s3cret"), ("demo", "nope")])
    assert results == [False] * 8 + [True, False]
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # after the 3 free failures: 1, 2, 4, then capped; the right one waits too
    assert login.failures == 1  # the success reset the count
    assert attempts(ThrottledLogin("demo", "s3cret"), [("other", "s3cret"), ("demo", "s3cre")])[0] == [False, False]


def test_launch_caps_uploads_and_uses_the_throttled_login(monkeypatch):
    from adapt import serve

    seen = {}

    class FakeDemo:
        def launch(self, **kwargs):
            seen.update(kwargs)

    serve.start(FakeDemo(), auth="demo:s3cret", block=False)
    assert isinstance(seen["auth"], ThrottledLogin) and seen["max_file_size"] == serve.MAX_UPLOAD
    assert asyncio.run(seen["auth"]("demo", "s3cret")) is True
    serve.start(FakeDemo(), block=False)
    assert seen["auth"] is None and seen["max_file_size"] == serve.MAX_UPLOAD


def test_the_readme_describes_the_login_as_it_is():
    readme = (REPO / "README.md").read_text()
    assert "not HTTP basic auth" in readme and "adds\nbasic auth" not in readme
