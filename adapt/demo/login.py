"""The demo's login (`--auth USER:PASSWORD`): Gradio's login form, slowed down after repeated failures.

Gradio shows a login page and keeps a session cookie; it is not HTTP basic
auth. Gradio itself never slows a guesser down, so the password check is this
async callable: after ``free`` failed attempts in a row every attempt (right or
wrong) first waits 1, 2, 4 ... up to ``max_delay`` seconds, without blocking
the server; a successful login resets the count.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

log = logging.getLogger(__name__)


class ThrottledLogin:
    def __init__(self, user: str, password: str, free: int = 3, max_delay: float = 30.0, sleep=asyncio.sleep):
        self._user, self._password = user.encode(), password.encode()
        self.free, self.max_delay, self._sleep = free, max_delay, sleep
        self.failures = 0

    def delay(self) -> float:
        over = self.failures - self.free
        return 0.0 if over < 0 else min(2.0**over, self.max_delay)

    async def __call__(self, username: str, password: str) -> bool:
        wait = self.delay()
        if wait:
            await self._sleep(wait)
        ok = hmac.compare_digest(username.encode(), self._user) & hmac.compare_digest(password.encode(), self._password)
        if ok:
            self.failures = 0
        else:
            self.failures += 1
            log.warning("failed demo login #%d in a row (user %r); the next attempt waits %.0f s", self.failures, username[:40], self.delay())
        return ok
