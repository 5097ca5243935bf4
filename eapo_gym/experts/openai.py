"""An expert behind any OpenAI-compatible server: vLLM, SGLang, llama.cpp, ``transformers serve``, OpenAI."""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from eapo_gym.experts.base import BaseExpert, ExpertQuery, ExpertReply

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert mathematician helping a student who is solving a problem. "
    "Answer the student's question briefly: give the next step or the fact they need, not a full solution."
)
DEFAULT_USER_TEMPLATE = "Problem:\n{question}\n\nThe student's work so far:\n{context}\n\nQuestion:\n{query}"
DEFAULT_COMPLETION_TEMPLATE = "{system}\n\n" + DEFAULT_USER_TEMPLATE + "\n\nAnswer:\n"
ENDPOINTS = {"chat": "/chat/completions", "completions": "/completions"}
RETRYABLE_STATUS = frozenset({408, 429})  # and every 5xx
MAX_RESPONSE_BYTES = 4_000_000
_SPEC = re.compile(r"(?P<model>.+?)@(?P<url>https?://.+)")
SPEC_OPTIONS = {
    "endpoint": str,
    "concurrency": int,
    "retries": int,
    "timeout": float,
    "backoff": float,
    "max_tokens": int,
    "temperature": float,
    "cache_size": int,
    "api_key_env": str,
}


class _Failure(Exception):
    """One attempt's failure; ``retry_after`` is the wait the server asked for, in seconds."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class _Session:
    """One event loop's HTTP client and concurrency cap (an ``httpx.AsyncClient`` is bound to its loop)."""

    client: httpx.AsyncClient
    slots: asyncio.Semaphore
    in_flight: dict[str, asyncio.Task] = field(default_factory=dict)


class OpenAIExpert(BaseExpert):
    """POSTs each query to ``{base_url}/chat/completions`` (or ``/completions``) with a pooled async client.

    A round's queries go concurrently, at most ``concurrency`` in flight per
    event loop, over one ``httpx.AsyncClient`` per loop. Each query has a
    deadline of ``timeout`` seconds from its first attempt, retries included;
    429, 408, 5xx and connection errors are retried up to ``retries`` times
    with exponential backoff (``backoff`` * 2**n, capped at ``max_backoff``,
    times a jitter factor in [0.5, 1] drawn from ``random.Random(seed)``), or
    after the server's ``Retry-After`` when it sends one. A query that runs out
    of retries or deadline, or gets a malformed reply, comes back as
    ``ExpertReply(text=None, error=...)`` and the rest of the round goes on.
    Every reply carries the server's ``usage`` token counts and its retries.

    ``endpoint="chat"`` sends ``system_prompt`` and ``user_template`` as
    messages; ``endpoint="completions"`` sends ``completion_template`` as a
    prompt, for base models without a chat template. Both templates take
    ``{question}``, ``{context}`` and ``{query}`` (the completion one also
    ``{system}``). ``cache_size > 0`` keeps that many replies, keyed on the
    whole request; identical requests in flight at once share one call;
    ``cache_hits`` counts both. ``api_key`` defaults to the environment
    variable ``api_key_env``; it is sent as a bearer token and never appears in
    errors or the repr. ``consult`` runs the round on a private event-loop
    thread; ``aconsult`` runs it on the caller's loop. See ``from_spec`` for
    the ``openai:MODEL@URL?option=value`` form.
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://localhost:8000/v1",
        api_key: str | None = None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        endpoint: str = "chat",
        concurrency: int = 32,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        seed: int | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        user_template: str = DEFAULT_USER_TEMPLATE,
        completion_template: str = DEFAULT_COMPLETION_TEMPLATE,
        max_reply_chars: int = 4000,
        cache_size: int = 0,
        name: str | None = None,
    ) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {sorted(ENDPOINTS)}, got {endpoint!r}")
        if concurrency < 1 or retries < 0 or cache_size < 0:
            raise ValueError("concurrency must be at least 1; retries and cache_size must not be negative")
        if timeout <= 0 or backoff < 0 or max_backoff < 0:
            raise ValueError("timeout must be positive; backoff and max_backoff must not be negative")
        for template in (user_template, completion_template):
            try:
                template.format(system="", question="", context="", query="")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(f"template {template!r} is not valid: {error!r}") from None
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.endpoint = endpoint
        self.url = self.base_url + ENDPOINTS[endpoint]
        self._api_key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.stop = list(stop) if stop else None
        self.system_prompt = system_prompt
        self.user_template = user_template
        self.completion_template = completion_template
        self.max_reply_chars = max_reply_chars
        self.cache_size = cache_size
        self.cache_hits = 0
        self.name = name or f"openai:{model}"
        self._jitter = random.Random(seed)
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._init_runtime()

    @classmethod
    def from_spec(cls, spec: str, **overrides: Any) -> OpenAIExpert:
        """``MODEL``, ``MODEL@URL`` or ``MODEL@URL?endpoint=completions&concurrency=32&retries=4&timeout=30``.

        Query options (removed from the URL): endpoint, concurrency, retries,
        timeout, backoff, max_tokens, temperature, cache_size, api_key_env.
        The key itself never goes in the spec.
        """
        match = _SPEC.fullmatch(spec)
        if match is None:
            if "@" in spec:
                raise ValueError(f"expert spec {spec!r}: the server URL must start with http:// or https://")
            return cls(spec, **overrides)
        parts = urlsplit(match["url"])
        if not parts.hostname:
            raise ValueError(f"expert spec {spec!r}: the server URL {match['url']!r} names no host")
        options: dict[str, Any] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)):
            if key not in SPEC_OPTIONS:
                raise ValueError(f"unknown option {key!r} in expert spec; options: {', '.join(SPEC_OPTIONS)}")
            try:
                options[key] = SPEC_OPTIONS[key](value)
            except ValueError:
                raise ValueError(f"option {key}={value!r} in expert spec is not a valid {key}") from None
        base_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return cls(match["model"], base_url, **(options | overrides))

    def __repr__(self) -> str:
        return f"OpenAIExpert(model={self.model!r}, url={self.url!r}, concurrency={self.concurrency})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for runtime in ("_lock", "_sessions", "_runner", "_runner_pid"):
            state.pop(runtime)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[asyncio.AbstractEventLoop, _Session] = {}
        self._runner: tuple[asyncio.AbstractEventLoop, threading.Thread] | None = None
        self._runner_pid = os.getpid()

    # ---- answering a round ----------------------------------------------------------------

    def consult(self, queries: Sequence[ExpertQuery]) -> list[ExpertReply]:
        """The round on this expert's own event-loop thread; callable from any thread, loop or not."""
        return asyncio.run_coroutine_threadsafe(self.aconsult(queries), self._runner_loop()).result()

    async def aconsult(self, queries: Sequence[ExpertQuery]) -> list[ExpertReply]:
        """The round on the running loop: every query concurrently, under the concurrency cap."""
        session = self._session()
        return list(await asyncio.gather(*(self._reply(session, query) for query in queries)))

    async def _reply(self, session: _Session, query: ExpertQuery) -> ExpertReply:
        body = self.request_body(query)
        if not self.cache_size:
            return await self._request(session, body)
        key = json.dumps([self.url, body], sort_keys=True)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
            shared = session.in_flight.get(key)
            self.cache_hits += cached is not None or shared is not None
        if cached is not None:
            return ExpertReply(cached)
        if shared is not None:
            reply = await asyncio.shield(shared)
            return ExpertReply(reply.text, reply.error)
        task = session.in_flight[key] = asyncio.ensure_future(self._request(session, body))
        task.add_done_callback(lambda _: session.in_flight.pop(key, None))
        reply = await asyncio.shield(task)
        if reply.text is not None:
            with self._lock:
                self._cache[key] = reply.text
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return reply

    def request_body(self, query: ExpertQuery) -> dict[str, Any]:
        """The JSON body for ``query`` at this expert's endpoint."""
        fields = {
            "system": self.system_prompt,
            "question": query.problem.question,
            "context": query.context or "(nothing yet)",
            "query": query.text,
        }
        body: dict[str, Any] = {"model": self.model}
        if self.endpoint == "chat":
            body["messages"] = [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": self.user_template.format(**fields)},
            ]
        else:
            body["prompt"] = self.completion_template.format(**fields)
        body |= {"max_tokens": self.max_tokens, "temperature": self.temperature}
        return body | ({"stop": self.stop} if self.stop else {})

    async def _request(self, session: _Session, body: dict[str, Any]) -> ExpertReply:
        """One query with retries, within its deadline; never raises except on cancellation."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        first_failure = ""
        retries = 0
        while True:
            async with session.slots:
                deadline = loop.time() + self.timeout if deadline is None else deadline
                try:
                    return await asyncio.wait_for(
                        self._attempt(session.client, body, retries), deadline - loop.time()
                    )
                except (asyncio.TimeoutError, httpx.TimeoutException):
                    failure = _Failure(f"no reply within the {self.timeout:g} s deadline", retryable=False)
                except httpx.TransportError as error:
                    failure = _Failure(
                        f"cannot reach {self.url} ({type(error).__name__}: {error})", retryable=True
                    )
                except _Failure as error:
                    failure = error
            first_failure = first_failure or str(failure)
            if not failure.retryable or retries >= self.retries:
                return self._failed(str(failure), retries, first_failure)
            wait = self._wait_before_retry(retries, failure.retry_after)
            if loop.time() + wait >= deadline:
                message = f"{failure}; waiting {wait:.3g} s to retry would pass the deadline"
                return self._failed(message, retries, first_failure)
            await asyncio.sleep(wait)
            retries += 1

    async def _attempt(self, client: httpx.AsyncClient, body: dict[str, Any], retries: int) -> ExpertReply:
        async with client.stream("POST", self.url, json=body) as response:
            content = await _read_capped(response)
        status = response.status_code
        if status >= 400:
            retryable = status in RETRYABLE_STATUS or status >= 500
            retry_after = _retry_after_seconds(response.headers.get("Retry-After")) if retryable else None
            snippet = content[:200].decode("utf-8", "replace")
            raise _Failure(f"HTTP {status} from {self.url}: {snippet!r}", retryable, retry_after)
        text, prompt_tokens, completion_tokens = self._parse(content)
        return ExpertReply(text, None, prompt_tokens, completion_tokens, retries)

    def _parse(self, content: bytes) -> tuple[str, int, int]:
        """The reply text and the ``usage`` token counts (0 when the server sends none)."""
        try:
            payload = json.loads(content)
        except ValueError:
            raise _Failure("malformed JSON in the reply", retryable=False) from None
        try:
            choice = payload["choices"][0]
            text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise _Failure("reply has no choices[0] text", retryable=False) from None
        if not isinstance(text, str):
            raise _Failure(f"reply content is {type(text).__name__}, not text", retryable=False)
        usage = payload.get("usage") if isinstance(payload, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        return (
            text.strip()[: self.max_reply_chars],
            _count(usage.get("prompt_tokens")),
            _count(usage.get("completion_tokens")),
        )

    def _wait_before_retry(self, retries: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return min(self.max_backoff, self.backoff * 2**retries) * self._jitter.uniform(0.5, 1.0)

    def _failed(self, message: str, retries: int, first_failure: str) -> ExpertReply:
        """A failed query's reply, naming the first failure too; its message never holds the API key."""
        if retries:
            first = "" if message.startswith(first_failure) else f"; the first attempt got {first_failure}"
            message = f"{message}{first} (after {retries} retries)"
        message = message.replace(self._api_key, "***") if self._api_key else message
        return ExpertReply(None, message, retries=retries)

    # ---- clients and loops ----------------------------------------------------------------

    def _session(self) -> _Session:
        """The running loop's client, created on first use; sessions of closed loops are dropped."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for stale in [other for other in self._sessions if other.is_closed()]:
                del self._sessions[stale]
            if loop not in self._sessions:
                headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
                limits = httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                )
                client = httpx.AsyncClient(headers=headers, limits=limits, timeout=self.timeout)
                self._sessions[loop] = _Session(client, asyncio.Semaphore(self.concurrency))
            return self._sessions[loop]

    async def aclose(self) -> None:
        """Close the running loop's client (call it on each loop that used ``aconsult``)."""
        with self._lock:
            session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.client.aclose()

    def close(self) -> None:
        """Close the client of ``consult``'s private loop and stop that loop's thread."""
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is None or runner[0].is_closed():
            return
        loop, thread = runner
        asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    def _runner_loop(self) -> asyncio.AbstractEventLoop:
        """``consult``'s private event loop, started on first use (and again in a forked child)."""
        with self._lock:
            if self._runner is None or self._runner_pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=f"{self.name}-loop", daemon=True)
                thread.start()
                if self._runner_pid != os.getpid():  # a forked child: the parent's clients are not ours
                    self._sessions = {}
                self._runner, self._runner_pid = (loop, thread), os.getpid()
            return self._runner[0]


async def _read_capped(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _Failure(f"reply larger than {MAX_RESPONSE_BYTES} bytes", retryable=False)
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after_seconds(header: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number, or an HTTP date; ``None`` when absent or unreadable."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
