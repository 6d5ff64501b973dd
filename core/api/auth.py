"""The API token: exact comparison, and a limit on wrong tries per client address.

A client address that sent ``MAX_FAILURES`` wrong tokens within ``WINDOW`` seconds is answered 429
(with Retry-After) until the oldest of them is a window old, even when it then sends the right token:
guessing is slowed to ten tries a minute.  Requests that send no token at all are not guesses and
are not counted.  Tokens are compared exactly (no trimming), in constant time.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections import OrderedDict, deque

MAX_FAILURES = 10
WINDOW = 60.0
MAX_TRACKED = 10_000          # client addresses remembered at once (the oldest is forgotten first)


def token_matches(given: object, token: str) -> bool:
    if not isinstance(given, str) or not token:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass"))


def token_from_headers(headers) -> str | None:
    """The token an API client sent (``X-API-Token`` or ``Authorization: Bearer``), exactly as sent."""
    if "X-API-Token" in headers:
        return headers.get("X-API-Token", "")
    auth = headers.get("Authorization")
    if auth is None:
        return None
    scheme, _, value = auth.partition(" ")
    return value if scheme.lower() == "bearer" else None


class LoginLimiter:
    """Wrong tries per client address in a sliding window (one process; the dashboard is one)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW, clock=time.monotonic):
        self.max_failures, self.window, self.clock = max_failures, window, clock
        self._failures: OrderedDict[str, deque] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque | None:
        tries = self._failures.get(address)
        while tries and now - tries[0] >= self.window:
            tries.popleft()
        if tries is not None and not tries:
            del self._failures[address]
            return None
        return tries

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 if it may now."""
        with self._lock:
            now = self.clock()
            tries = self._recent(address, now)
            if tries is None or len(tries) < self.max_failures:
                return 0
            return max(1, math.ceil(tries[-self.max_failures] + self.window - now))

    def failed(self, address: str) -> None:
        with self._lock:
            now = self.clock()
            tries = self._recent(address, now)
            if tries is None:
                tries = self._failures[address] = deque(maxlen=self.max_failures)
                while len(self._failures) > MAX_TRACKED:
                    self._failures.popitem(last=False)
            else:
                self._failures.move_to_end(address)
            tries.append(now)


def check(limiter: LoginLimiter, address: str, given: object, token: str) -> tuple[bool, int]:
    """(accepted, retry_after): refused while ``address`` is limited, whatever it sends; a wrong token counts."""
    wait = limiter.retry_after(address)
    if wait:
        return False, wait
    if token_matches(given, token):
        return True, 0
    limiter.failed(address)
    return False, 0
