"""The three ways of calling a rate-limited API that quotabot is compared with.

* ``openai_sdk``: the official client, each request sent at once; the SDK retries a 429 twice
  (``max_retries=2``), waiting what ``retry-after`` says.
* ``tenacity_backoff``: the OpenAI cookbook's advice, ``@retry(wait=wait_random_exponential(
  min=1, max=60), stop=stop_after_attempt(6))`` around the SDK with its own retries off.
* ``CookbookProcessor``: a compact re-implementation of the cookbook's
  ``api_request_parallel_processor.py`` (a script, not a library), kept faithful to it: token
  and request buckets refilled continuously, a FIFO of requests dispatched when both have room,
  failures retried from a retry queue, and a 15 s pause of the whole loop after a rate-limit
  error. Only the input differs: requests arrive over time instead of being read from a file.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from openai import AsyncOpenAI
from tenacity import retry, stop_after_attempt, wait_random_exponential

from bench.budgets.harness import Submit
from bench.budgets.workload import Item, Workload
from bot.tokens import get_encoding

API_KEY = "sk-bench"


def _messages(item: Item) -> list[dict[str, str]]:
    return [m.to_openai() for m in item.messages]


@asynccontextmanager
async def openai_sdk(workload: Workload, base_url: str) -> AsyncIterator[Submit]:
    async with AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=2) as client:

        async def submit(item: Item) -> object:
            return await client.chat.completions.create(
                model=workload.model,
                messages=_messages(item),  # type: ignore[arg-type]
                max_tokens=item.max_tokens,
            )

        yield submit


@asynccontextmanager
async def tenacity_backoff(workload: Workload, base_url: str) -> AsyncIterator[Submit]:
    async with AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0) as client:

        @retry(wait=wait_random_exponential(min=1, max=60), stop=stop_after_attempt(6))
        async def completion_with_backoff(**kwargs: Any) -> object:
            return await client.chat.completions.create(**kwargs)

        async def submit(item: Item) -> object:
            return await completion_with_backoff(
                model=workload.model, messages=_messages(item), max_tokens=item.max_tokens
            )

        yield submit


# -- the cookbook's api_request_parallel_processor ------------------------------------------


class CookbookFailed(Exception):
    """The processor gave up on the request after max_attempts."""


def num_tokens_consumed_from_request(request_json: dict[str, Any], encoding_name: str) -> int:
    """The script's estimate for a chat completion: 4 tokens per message plus its values,
    2 for the reply priming, plus ``n * max_tokens``. (The script calls
    ``tiktoken.get_encoding``, which downloads; quotabot's offline copy is the same BPE.)"""
    encoding = get_encoding(encoding_name)
    completion_tokens: int = request_json.get("n", 1) * request_json.get("max_tokens", 15)
    num_tokens = 0
    for message in request_json["messages"]:
        num_tokens += 4
        for key, value in message.items():
            num_tokens += len(encoding.encode(value))
            if key == "name":
                num_tokens -= 1
    num_tokens += 2
    return num_tokens + completion_tokens


@dataclass
class _StatusTracker:
    num_tasks_in_progress: int = 0
    num_tasks_succeeded: int = 0
    num_tasks_failed: int = 0
    num_rate_limit_errors: int = 0
    num_api_errors: int = 0
    num_other_errors: int = 0
    time_of_last_rate_limit_error: float = 0.0


@dataclass
class _APIRequest:
    request_json: dict[str, Any]
    token_consumption: int
    attempts_left: int
    done: asyncio.Future[object]
    result: list[object] = field(default_factory=list)

    async def call_api(
        self,
        session: aiohttp.ClientSession,
        request_url: str,
        request_header: dict[str, str],
        retry_queue: asyncio.Queue[_APIRequest],
        status_tracker: _StatusTracker,
    ) -> None:
        error: object = None
        try:
            async with session.post(
                url=request_url, headers=request_header, json=self.request_json
            ) as raw:
                response = await raw.json()
            if "error" in response:
                status_tracker.num_api_errors += 1
                error = response
                if "rate limit" in response["error"].get("message", "").lower():
                    status_tracker.time_of_last_rate_limit_error = time.time()
                    status_tracker.num_rate_limit_errors += 1
                    status_tracker.num_api_errors -= 1
        except Exception as e:  # the script catches everything and retries
            status_tracker.num_other_errors += 1
            error = e
        if error:
            self.result.append(error)
            if self.attempts_left:
                retry_queue.put_nowait(self)
            else:
                status_tracker.num_tasks_in_progress -= 1
                status_tracker.num_tasks_failed += 1
                if not self.done.done():
                    self.done.set_exception(CookbookFailed(str(self.result)[:200]))
        else:
            status_tracker.num_tasks_in_progress -= 1
            status_tracker.num_tasks_succeeded += 1
            if not self.done.done():
                self.done.set_result(response)


class CookbookProcessor:
    """The script's main loop, fed by :meth:`submit` instead of a JSONL file."""

    seconds_to_pause_after_rate_limit_error = 15
    seconds_to_sleep_each_loop = 0.001

    def __init__(
        self,
        *,
        request_url: str,
        max_requests_per_minute: float,
        max_tokens_per_minute: float,
        token_encoding_name: str = "cl100k_base",
        max_attempts: int = 5,
    ):
        self.request_url = request_url
        self.max_requests_per_minute = max_requests_per_minute
        self.max_tokens_per_minute = max_tokens_per_minute
        self.token_encoding_name = token_encoding_name
        self.max_attempts = max_attempts
        self.status_tracker = _StatusTracker()
        self._incoming: deque[_APIRequest] = deque()

    async def submit(self, request_json: dict[str, Any]) -> object:
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._incoming.append(
            _APIRequest(
                request_json=request_json,
                token_consumption=num_tokens_consumed_from_request(
                    request_json, self.token_encoding_name
                ),
                attempts_left=self.max_attempts,
                done=done,
            )
        )
        self.status_tracker.num_tasks_in_progress += 1
        return await done

    async def run(self) -> None:
        """Until cancelled; the script's loop, line for line where it applies."""
        request_header = {"Authorization": f"Bearer {API_KEY}"}
        queue_of_requests_to_retry: asyncio.Queue[_APIRequest] = asyncio.Queue()
        status_tracker = self.status_tracker
        next_request: _APIRequest | None = None
        available_request_capacity = self.max_requests_per_minute
        available_token_capacity = self.max_tokens_per_minute
        last_update_time = time.time()
        in_flight: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession() as session:
            try:
                while True:
                    if next_request is None:
                        if not queue_of_requests_to_retry.empty():
                            next_request = queue_of_requests_to_retry.get_nowait()
                        elif self._incoming:
                            next_request = self._incoming.popleft()

                    current_time = time.time()
                    seconds_since_update = current_time - last_update_time
                    available_request_capacity = min(
                        available_request_capacity
                        + self.max_requests_per_minute * seconds_since_update / 60.0,
                        self.max_requests_per_minute,
                    )
                    available_token_capacity = min(
                        available_token_capacity
                        + self.max_tokens_per_minute * seconds_since_update / 60.0,
                        self.max_tokens_per_minute,
                    )
                    last_update_time = current_time

                    if next_request:
                        next_request_tokens = next_request.token_consumption
                        if (
                            available_request_capacity >= 1
                            and available_token_capacity >= next_request_tokens
                        ):
                            available_request_capacity -= 1
                            available_token_capacity -= next_request_tokens
                            next_request.attempts_left -= 1
                            task = asyncio.create_task(
                                next_request.call_api(
                                    session,
                                    self.request_url,
                                    request_header,
                                    queue_of_requests_to_retry,
                                    status_tracker,
                                )
                            )
                            in_flight.add(task)
                            task.add_done_callback(in_flight.discard)
                            next_request = None

                    await asyncio.sleep(self.seconds_to_sleep_each_loop)

                    seconds_since_rate_limit_error = (
                        time.time() - status_tracker.time_of_last_rate_limit_error
                    )
                    if (
                        seconds_since_rate_limit_error
                        < self.seconds_to_pause_after_rate_limit_error
                    ):
                        remaining_seconds_to_pause = (
                            self.seconds_to_pause_after_rate_limit_error
                            - seconds_since_rate_limit_error
                        )
                        await asyncio.sleep(remaining_seconds_to_pause)
            finally:
                for task in in_flight:
                    task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)


@asynccontextmanager
async def cookbook(workload: Workload, base_url: str) -> AsyncIterator[Submit]:
    """The processor at 75% of the limits, as the cookbook advises for headroom."""
    processor = CookbookProcessor(
        request_url=f"{base_url}/chat/completions",
        max_requests_per_minute=0.75 * workload.rpm,
        max_tokens_per_minute=0.75 * workload.tpm,
    )
    loop_task = asyncio.create_task(processor.run())

    async def submit(item: Item) -> object:
        return await processor.submit(
            {"model": workload.model, "messages": _messages(item), "max_tokens": item.max_tokens}
        )

    try:
        yield submit
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
