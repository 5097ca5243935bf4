"""Experts backed by models: an OpenAI-compatible server (a local fake) and a local transformers model."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from eapo_gym.env import ExpertMathEnv
from eapo_gym.experts import ExpertQuery, OpenAIExpert, TransformersExpert, make_expert
from eapo_gym.experts.reference import EXHAUSTED_REPLY
from eapo_gym.problems import Problem

PROBLEM = Problem(id="p", question="12+30+7=?", answer="49", solution_steps=("12+30=42", "42+7=49"))


class ChatHandler(BaseHTTPRequestHandler):
    """A minimal /v1/chat/completions: replies 'hint for <question>', or misbehaves by path."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ChatHandler.requests.append({"path": self.path, "body": body, "auth": self.headers["Authorization"]})
        if self.path.startswith("/slow"):
            time.sleep(2.0)
        if self.path.startswith("/garbage"):
            payload = b"not json"
        else:
            question = body["messages"][-1]["content"].rsplit("\n", 1)[-1]
            payload = json.dumps({"choices": [{"message": {"content": f" hint for {question} "}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ChatHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_openai_expert_posts_chat_completions_and_answers_each_query(server):
    ChatHandler.requests.clear()
    expert = OpenAIExpert("qwq-32b", base_url=f"{server}/v1", api_key="secret", max_tokens=64)
    queries = [ExpertQuery(f"q{i}", PROBLEM, context="12+30=42") for i in range(3)]
    assert sorted(expert.consult(queries)) == ["hint for q0", "hint for q1", "hint for q2"]
    request = ChatHandler.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret"
    assert request["body"]["model"] == "qwq-32b" and request["body"]["max_tokens"] == 64
    assert "12+30+7=?" in request["body"]["messages"][-1]["content"]
    assert "12+30=42" in request["body"]["messages"][-1]["content"]


def test_openai_expert_by_name_inside_the_environment(server):
    env = ExpertMathEnv(problems=[PROBLEM], experts=[make_expert(f"openai:m@{server}/v1")], acceptance=1.0)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("<expert>what first?</expert>")
    assert not terminated and info["accepted"] == 1 and info["expert_errors"] == 0
    assert "<reply>hint for what first?</reply>" in info["feedback"]


@pytest.mark.parametrize("path", ["down", "slow", "garbage"])
def test_a_down_slow_or_broken_server_degrades_the_turn(server, path):
    url = f"http://127.0.0.1:{free_port()}/v1" if path == "down" else f"{server}/{path}/v1"
    env = ExpertMathEnv(
        problems=[PROBLEM], experts=[OpenAIExpert("m", base_url=url, timeout=5)], acceptance=1.0,
        expert_timeout=0.5,
    )  # fmt: skip
    env.reset(seed=0)
    start = time.perf_counter()
    _, reward, terminated, _, info = env.step("<expert>help</expert>")
    assert time.perf_counter() - start < 1.5
    assert not terminated and info["expert_errors"] == 1
    assert env.protocol.failure_notice in info["feedback"]
    _, reward, terminated, _, info = env.step("<answer>49</answer>")
    assert terminated and reward == 1.0


def test_transformers_expert_loads_a_local_model_and_gives_successive_lines(tiny_model_dir):
    expert = make_expert(f"model:{tiny_model_dir}")
    assert isinstance(expert, TransformersExpert)
    memory: dict = {}
    replies = [expert.consult([ExpertQuery("next step", PROBLEM, memory=memory)])[0] for _ in range(2)]
    assert len(replies) == 2 and all(isinstance(r, str) and r and "\n" not in r for r in replies)
    assert memory["lines"] == replies
    env = ExpertMathEnv(problems=[PROBLEM], experts=[expert], acceptance=1.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step("<expert>a</expert><expert>b</expert>")
    assert info["accepted"] == 2 and info["expert_errors"] == 0


def test_transformers_expert_leaves_the_answer_to_the_policy(tiny_model_dir, monkeypatch):
    expert = TransformersExpert(tiny_model_dir)
    lines = iter(["12+30=42\n", "<answer>49</answer>"])
    monkeypatch.setattr(expert, "_generate", lambda prompt: next(lines))
    memory: dict = {}
    query = ExpertQuery("next", PROBLEM, memory=memory)
    assert expert.consult([query, query, query]) == ["12+30=42", EXHAUSTED_REPLY, EXHAUSTED_REPLY]


def test_transformers_expert_needs_a_tokenizer_for_a_loaded_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    with pytest.raises(ValueError, match="tokenizer"):
        TransformersExpert(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
