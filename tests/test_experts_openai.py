"""The OpenAI-compatible expert against a local fake server that injects faults per query."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from eapo_gym.env import ExpertMathEnv
from eapo_gym.experts import ExpertQuery, ExpertReply, OpenAIExpert, make_expert
from eapo_gym.problems import Problem

PROBLEM = Problem(id="p", question="12+30+7=?", answer="49", solution_steps=("12+30=42", "42+7=49"))
SECRET = "sk-test-do-not-leak-1234"
QUESTION = re.compile(r"Question:\n(.*)")


class FaultServer(ThreadingHTTPServer):
    """Answers 'hint for <query>'; the query's first word picks a fault (see ``FaultHandler``)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.tries: collections.Counter[str] = collections.Counter()
        self.reported_prompt_tokens = 0
        self.active = self.peak = 0

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up on a stall is expected
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class FaultHandler(BaseHTTPRequestHandler):
    """Faults by the query's first word: ``5xx`` (503 twice, then a reply), ``429`` (429 with
    ``Retry-After: 1`` once), ``later`` (429 with ``Retry-After: 30``), ``down`` (503 always),
    ``worse`` (503, then 400), ``stall`` (5 s of silence), ``echo`` (401 quoting the key),
    ``badjson``, ``notstring`` (``content: 42``), ``slow`` (0.2 s)."""

    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible in client ports
    server: FaultServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        query = QUESTION.search(prompt).group(1)
        fault = query.split()[0]
        with self.server.lock:
            self.server.requests.append(
                {"path": self.path, "body": body, "auth": self.headers.get("Authorization"),
                 "port": self.client_address[1], "time": time.monotonic()}
            )  # fmt: skip
            self.server.tries[query] += 1
            tries = self.server.tries[query]
            self.server.active += 1
            self.server.peak = max(self.server.peak, self.server.active)
        try:
            self._answer(body, prompt, query, fault, tries)
        finally:
            with self.server.lock:
                self.server.active -= 1

    def _answer(self, body: dict, prompt: str, query: str, fault: str, tries: int) -> None:
        if fault == "slow":
            time.sleep(0.2)
        if fault == "stall":
            time.sleep(5.0)
        if (fault == "5xx" and tries <= 2) or fault == "down" or (fault == "worse" and tries == 1):
            return self._send(503, b'{"error": "overloaded"}')
        if fault == "worse":
            return self._send(400, b'{"error": "bad request"}')
        if (fault == "429" and tries == 1) or fault == "later":
            return self._send(
                429, b'{"error": "rate limited"}', {"Retry-After": "1" if fault == "429" else "30"}
            )
        if fault == "echo":  # a careless server that quotes the key back
            return self._send(401, json.dumps({"error": f"bad key {self.headers['Authorization']}"}).encode())
        if fault == "badjson":
            return self._send(200, b'{"choices": [')
        text = 42 if fault == "notstring" else f" hint for {query} "
        choice = {"message": {"role": "assistant", "content": text}} if "messages" in body else {"text": text}
        usage = {"prompt_tokens": len(prompt), "completion_tokens": 3, "total_tokens": len(prompt) + 3}
        with self.server.lock:
            self.server.reported_prompt_tokens += usage["prompt_tokens"]
        self._send(200, json.dumps({"choices": [choice], "usage": usage}).encode())

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake():
    server = FaultServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def expert_for(url: str, **kwargs) -> OpenAIExpert:
    """Small backoff and a short deadline, so faults cost the tests little time."""
    settings = {"api_key": SECRET, "retries": 2, "backoff": 0.01, "timeout": 2.5, "seed": 0} | kwargs
    return OpenAIExpert("qwq-32b", url, **settings)


def queries(*texts: str, context: str = "12+30=42") -> list[ExpertQuery]:
    return [ExpertQuery(text, PROBLEM, context=context) for text in texts]


# ---- faults through the environment ---------------------------------------------------------

FAULTS = [  # query, retries done, the failure's message (None: answered)
    ("ok", 0, None),
    ("5xx", 2, None),
    ("429", 1, None),
    ("down", 2, "HTTP 503"),
    ("worse", 1, "HTTP 400"),
    ("later", 0, "would pass the deadline"),
    ("stall", 0, "no reply within the 2.5 s deadline"),
    ("echo", 0, "HTTP 401"),
    ("badjson", 0, "malformed JSON"),
    ("notstring", 0, "reply content is int, not text"),
]


@pytest.mark.parametrize(("query", "retries", "error"), FAULTS)
def test_a_fault_costs_one_reply_and_never_the_episode(fake, query, retries, error):
    expert = expert_for(fake.url)
    env = ExpertMathEnv(problems=[PROBLEM], experts=[expert], acceptance=1.0, expert_timeout=10)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(f"<expert>{query}</expert>")
    assert not terminated and info["accepted"] == 1
    assert info["expert_retries"] == retries == fake.tries[query] - 1
    if error is None:
        assert info["expert_errors"] == 0 and f"<reply>hint for {query}</reply>" in info["feedback"]
        assert info["expert_prompt_tokens"] == fake.reported_prompt_tokens > 0
        assert info["expert_completion_tokens"] == 3
    else:
        assert info["expert_errors"] == 1 and env.protocol.failure_notice in info["feedback"]
        assert error in info["expert_failures"][0] and info["expert_failures"][0].startswith("openai:qwq-32b")
    assert SECRET not in " ".join(info["expert_failures"]) and SECRET not in repr(expert)
    _, reward, terminated, _, info = env.step("<answer>49</answer>")
    assert terminated and reward == 1.0


def test_a_refused_connection_is_retried_then_reported(fake):
    env = ExpertMathEnv(problems=[PROBLEM], experts=[expert_for(closed_port_url())], acceptance=1.0)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("<expert>ok</expert>")
    assert not terminated and info["expert_errors"] == 1 and info["expert_retries"] == 2
    assert "cannot reach" in info["expert_failures"][0] and "ConnectError" in info["expert_failures"][0]
    _, reward, terminated, _, _ = env.step("<answer>49</answer>")
    assert terminated and reward == 1.0


def test_one_failing_query_leaves_the_rest_of_the_round_answered(fake):
    replies = expert_for(fake.url).consult(queries("ok a", "5xx b", "badjson c", "stall d", "429 e"))
    assert [r.text for r in replies] == ["hint for ok a", "hint for 5xx b", None, None, "hint for 429 e"]
    assert [r.retries for r in replies] == [0, 2, 0, 0, 1]
    assert "malformed JSON" in replies[2].error and "deadline" in replies[3].error


def test_a_failure_names_its_last_and_its_first_cause(fake):
    (reply,) = expert_for(fake.url).consult(queries("worse x"))
    assert reply.retries == 1 and reply.error.startswith("HTTP 400 from http://127.0.0.1")
    assert "the first attempt got HTTP 503" in reply.error and reply.error.endswith("(after 1 retries)")


def test_retry_after_is_honoured(fake):
    (reply,) = expert_for(fake.url, backoff=0.0).consult(queries("429 x"))
    first, second = (r["time"] for r in fake.requests)
    assert reply.text == "hint for 429 x" and reply.retries == 1 and second - first >= 1.0


def test_backoff_grows_exponentially_with_seeded_jitter(fake):
    (reply,) = expert_for(fake.url, retries=3, backoff=0.1, seed=7).consult(queries("down x"))
    jitter = random.Random(7)
    waits = [0.1 * 2**n * jitter.uniform(0.5, 1.0) for n in range(3)]
    times = [r["time"] for r in fake.requests]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert reply.retries == 3 and all(gap >= wait for gap, wait in zip(gaps, waits, strict=True))


def test_max_backoff_caps_the_wait(fake):
    (capped,) = expert_for(fake.url, backoff=100.0, max_backoff=0.01).consult(queries("down a"))
    (uncapped,) = expert_for(fake.url, backoff=100.0, max_backoff=100.0).consult(queries("down b"))
    assert capped.retries == 2 and "HTTP 503" in capped.error
    assert uncapped.retries == 0 and "would pass the deadline" in uncapped.error


# ---- requests, usage, pooling, concurrency --------------------------------------------------


def test_chat_requests_carry_the_problem_work_and_question(fake):
    expert = expert_for(fake.url, max_tokens=64, temperature=0.3)
    replies = expert.consult(queries("ok 0", "ok 1", "ok 2"))
    assert [r.text for r in replies] == ["hint for ok 0", "hint for ok 1", "hint for ok 2"]
    assert all(
        isinstance(r, ExpertReply) and r.prompt_tokens > 0 and r.completion_tokens == 3 for r in replies
    )
    assert sum(r.prompt_tokens for r in replies) == fake.reported_prompt_tokens
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {SECRET}"
    body = request["body"]
    assert body["model"] == "qwq-32b" and body["max_tokens"] == 64 and body["temperature"] == 0.3
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "12+30+7=?" in body["messages"][-1]["content"] and "12+30=42" in body["messages"][-1]["content"]


def test_the_completions_endpoint_sends_one_prompt_string(fake):
    expert = expert_for(fake.url, endpoint="completions", stop=["\n"])
    (reply,) = expert.consult(queries("ok x"))
    request = fake.requests[0]
    assert reply.text == "hint for ok x" and request["path"] == "/v1/completions"
    assert "messages" not in request["body"] and request["body"]["stop"] == ["\n"]
    prompt = request["body"]["prompt"]
    assert prompt.startswith(expert.system_prompt) and "12+30+7=?" in prompt and "12+30=42" in prompt
    assert reply.prompt_tokens == len(prompt)


def test_concurrency_is_capped_and_connections_are_pooled(fake):
    expert = expert_for(fake.url, concurrency=3)
    for _ in range(2):
        replies = expert.consult(queries(*(f"slow {i}" for i in range(9))))
        assert all(r.text == f"hint for slow {i}" for i, r in enumerate(replies))
    assert fake.peak == 3
    assert len(fake.requests) == 18 and len({r["port"] for r in fake.requests}) <= 3
    expert.close()


def test_rounds_run_on_a_long_lived_loop_and_on_fresh_loops(fake):
    expert = expert_for(fake.url)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        for round_ in range(2):
            future = asyncio.run_coroutine_threadsafe(expert.aconsult(queries(f"ok {round_}")), loop)
            assert future.result(timeout=10)[0].text == f"hint for ok {round_}"
        assert expert.consult(queries("ok sync"))[0].text == "hint for ok sync"
        for round_ in range(2):
            assert asyncio.run(expert.aconsult(queries(f"ok fresh {round_}")))[0].text.endswith(f"{round_}")
        asyncio.run_coroutine_threadsafe(expert.aclose(), loop).result(timeout=10)
        future = asyncio.run_coroutine_threadsafe(expert.aconsult(queries("ok reopened")), loop)
        assert future.result(timeout=10)[0].text == "hint for ok reopened"
    finally:
        asyncio.run_coroutine_threadsafe(expert.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        expert.close()


def test_a_round_cancelled_at_the_panels_deadline_frees_its_slots(fake):
    expert = expert_for(fake.url, concurrency=1)

    async def cancelled_then_next() -> str:
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(expert.aconsult(queries("stall a")), 0.3)
            # the stalled request would hold the only slot for its 2.5 s deadline if it were not cancelled
            (reply,) = await asyncio.wait_for(expert.aconsult(queries("ok b")), 1.5)
            return reply.text
        finally:
            await expert.aclose()

    assert asyncio.run(cancelled_then_next()) == "hint for ok b"


# ---- the reply cache ------------------------------------------------------------------------


def test_the_cache_answers_repeated_requests_without_the_server(fake):
    expert = expert_for(fake.url, cache_size=2)
    first = expert.consult(queries("ok a"))[0]
    again = expert.consult(queries("ok a"))[0]
    assert again.text == first.text and expert.cache_hits == 1 and len(fake.requests) == 1
    assert again.prompt_tokens == again.completion_tokens == 0  # nothing was spent
    twins = expert.consult(queries("ok b", "ok b"))  # identical requests in flight share one call
    assert [r.text for r in twins] == ["hint for ok b"] * 2 and expert.cache_hits == 2
    assert len(fake.requests) == 2
    expert.temperature = 0.7  # a sampling parameter is part of the key
    expert.consult(queries("ok a"))
    assert expert.cache_hits == 2 and len(fake.requests) == 3


def test_failures_are_not_cached_and_the_cache_is_off_by_default(fake):
    cached = expert_for(fake.url, cache_size=4, retries=0)
    assert cached.consult(queries("5xx a"))[0].text is None
    assert cached.consult(queries("5xx a"))[0].text is None and cached.cache_hits == 0
    assert cached.consult(queries("5xx a"))[0].text == "hint for 5xx a"
    plain = expert_for(fake.url)
    plain.consult(queries("ok c"))
    plain.consult(queries("ok c"))
    assert plain.cache_hits == 0 and fake.tries["ok c"] == 2


# ---- building it: spec strings, keys, bad input ---------------------------------------------


def test_a_spec_string_sets_the_url_and_options(fake, monkeypatch):
    monkeypatch.setenv("MY_EXPERT_KEY", SECRET)
    options = "endpoint=completions&concurrency=4&retries=1&timeout=7.5&api_key_env=MY_EXPERT_KEY"
    spec = f"openai:qwq-32b@{fake.url}?{options}"
    expert = make_expert(spec)
    assert isinstance(expert, OpenAIExpert) and expert.url == f"{fake.url}/completions"
    assert (expert.concurrency, expert.retries, expert.timeout) == (4, 1, 7.5)
    assert expert.consult(queries("ok s"))[0].text == "hint for ok s"
    assert fake.requests[0]["auth"] == f"Bearer {SECRET}" and SECRET not in repr(expert)
    plain = make_expert(f"openai:m@{fake.url}")
    assert (plain.url, plain.endpoint, plain.concurrency) == (f"{fake.url}/chat/completions", "chat", 32)
    assert make_expert("openai:org/model@main@http://h:1/v1").model == "org/model@main"
    assert make_expert("openai:gpt-4o").url == "http://localhost:8000/v1/chat/completions"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("m@http://h:1/v1?concurency=4", "unknown option 'concurency'"),
        ("m@http://h:1/v1?retries=many", "retries='many'"),
        ("m@http://h:1/v1?endpoint=embeddings", "endpoint must be one of"),
        ("m@http://h:1/v1?concurrency=0", "concurrency must be at least 1"),
        ("m@localhost:8000/v1", "must start with http:// or https://"),
    ],
)
def test_a_bad_spec_gets_a_clear_error(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        OpenAIExpert.from_spec(spec)


def test_a_bad_template_fails_at_construction():
    with pytest.raises(ValueError, match="template"):
        OpenAIExpert("m", user_template="{question} {student}")


def test_an_expert_survives_pickling_and_keeps_working(fake):
    import pickle

    expert = expert_for(fake.url, cache_size=2)
    expert.consult(queries("ok p"))
    clone = pickle.loads(pickle.dumps(expert))
    assert clone.consult(queries("ok p"))[0].text == "hint for ok p" and clone.cache_hits == 1
    expert.close()
    clone.close()
