"""An expert behind any OpenAI-compatible chat server: vLLM, SGLang, llama.cpp, or the OpenAI API."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from eapo_gym.experts.base import BaseExpert, ExpertQuery

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert mathematician helping a student who is solving a problem. "
    "Answer the student's question briefly: give the next step or the fact they need, not a full solution."
)
DEFAULT_USER_TEMPLATE = "Problem:\n{question}\n\nThe student's work so far:\n{context}\n\nQuestion:\n{query}"


class OpenAIExpert(BaseExpert):
    """POSTs each query to ``{base_url}/chat/completions``; the K queries of a turn go concurrently.

    Standard library only (``urllib``). ``timeout`` bounds each request; a
    server that is down, slow or returns garbage raises, and the env's panel
    turns that into an "expert unavailable" notice for the turn, so training
    goes on. Replies are cut to ``max_reply_chars``. ``api_key`` defaults to
    ``$OPENAI_API_KEY`` (local servers usually ignore it).
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://localhost:8000/v1",
        api_key: str | None = None,
        timeout: float = 60.0,
        max_tokens: int = 512,
        temperature: float = 0.0,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        user_template: str = DEFAULT_USER_TEMPLATE,
        max_reply_chars: int = 4000,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.system_prompt = system_prompt
        self.user_template = user_template
        self.max_reply_chars = max_reply_chars
        self.name = name or f"openai:{model}"

    def consult(self, queries: Sequence[ExpertQuery]) -> list[str]:
        if len(queries) == 1:
            return [self._ask(queries[0])]
        with ThreadPoolExecutor(max_workers=len(queries)) as pool:
            return list(pool.map(self._ask, queries))

    def _ask(self, query: ExpertQuery) -> str:
        user = self.user_template.format(
            question=query.problem.question, context=query.context or "(nothing yet)", query=query.text
        )
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": user},
            ],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            payload = json.loads(response.read(1_000_000))
        content = payload["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise ValueError(f"{self.name}: reply content is {type(content).__name__}, not text")
        return content.strip()[: self.max_reply_chars]
