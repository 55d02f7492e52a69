"""gidgethub's GitHubAPI, retrying what a GitHub hiccup makes fail.

Every call the workers make (👀, the permission check, the pull request, comments, check runs,
installation tokens) goes through `RetryingGitHubAPI._request`, the transport method gidgethub
asks its implementations to provide, so the retry lives in one place. Retried: a 5xx answer, a
timeout or a lost connection, and the rate limits (a 429, or a 403 saying the limit is spent
or asking to retry after a while), waiting as long as GitHub asks when it says. Everything else
(404, 422, bad credentials…) is answered at once and raised by gidgethub as usual; when the
retries are spent, the last answer is raised the same way, or the last connection error.

Retries use tenacity (a well-kept retry library: stop and wait policies, jitter, async);
gidgethub itself has no retry, only the parsing of the rate-limit headers used here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from gidgethub import sansio
from gidgethub.aiohttp import GitHubAPI
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)

Response = tuple[int, Mapping[str, str], bytes]
TRANSIENT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)  # for the server's one ClientSession


@dataclass(frozen=True)
class RetryPolicy:
    """How long a GitHub call keeps trying: `attempts` at most, within `max_delay_s` in all,
    waiting `first_wait_s` doubling (with jitter) up to `max_wait_s`, or what GitHub asks."""

    attempts: int = 8
    max_delay_s: float = 300.0
    first_wait_s: float = 1.0
    max_wait_s: float = 60.0


def asked_wait(status: int, headers: Mapping[str, str], now: float) -> float | None:
    """The wait GitHub asks for before a retry (Retry-After, or the rate limit's reset), if any."""
    retry_after = headers.get("Retry-After")
    if retry_after is not None and retry_after.strip().isdigit():
        return float(retry_after)
    limit = sansio.RateLimit.from_http(headers)
    if status in (403, 429) and limit is not None and limit.remaining == 0:
        return max(0.0, limit.reset_datetime.timestamp() - now)
    return None


def transient(response: Response) -> bool:
    """Whether an answer is a hiccup worth retrying: a 5xx, or a rate limit."""
    status, headers, _ = response
    if status >= 500 or status == 429:
        return True
    return status == 403 and asked_wait(status, headers, time.time()) is not None


class RetryingGitHubAPI(GitHubAPI):
    def __init__(self, *args: Any, retry: RetryPolicy = RetryPolicy(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry = retry

    async def _request(self, method: str, url: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        policy = self.retry
        backoff = wait_exponential_jitter(
            multiplier=policy.first_wait_s, max=policy.max_wait_s, jitter=policy.first_wait_s
        )

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            if outcome is not None and not outcome.failed:
                status, answer_headers, _ = outcome.result()
                asked = asked_wait(status, answer_headers, time.time())
                if asked is not None:
                    return min(asked, policy.max_delay_s)
            return float(backoff(state))

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS) | retry_if_result(transient),
            wait=wait,
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_delay_s),
            before_sleep=_log_retry(method, url),
            retry_error_callback=_last_answer,
            reraise=True,
        )
        response: Response = await retrying(super()._request, method, url, headers, body)
        return response


def _last_answer(state: RetryCallState) -> Response:
    """The retries are spent: the last answer, for gidgethub to raise as it would have; or the error."""
    assert state.outcome is not None
    result: Response = state.outcome.result()  # re-raises the last connection error
    return result


def _log_retry(method: str, url: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        why = f"HTTP {outcome.result()[0]}" if not outcome.failed else type(outcome.exception()).__name__
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("GitHub %s %s: %s, try %d; retrying in %.1f s", method, url, why, state.attempt_number, wait)

    return before_sleep
