"""An episode's first prompt as token ids: through the tokenizer's chat template when it has one.

Without a chat template (the package's tokenizer, base models) the observation's
text is encoded as it is. With one (instruct and reasoning models), the env's
instructions become the system message, the problem (the prompt template without
the instructions) the user message, and the template's generation prompt opens the
assistant turn. The whole episode then continues inside that one assistant turn:
the policy's turns and the environment's reply blocks are appended token by token,
replies in place, as ReSearch and ReCall do, and masked from the loss.
"""

from __future__ import annotations

from jinja2 import TemplateError

from eapo_gym.env import ExpertMathEnv


def chat_messages(env: ExpertMathEnv) -> list[dict[str, str]]:
    """System (the instructions, if any) and user (the problem) messages of ``env``'s current episode."""
    user = env.prompt_template.format(instructions="", question=env.problem.question).strip()
    system = [{"role": "system", "content": env.instructions}] if env.instructions else []
    return [*system, {"role": "user", "content": user}]


def prompt_ids(tokenizer, env: ExpertMathEnv) -> list[int]:
    """The token ids that start ``env``'s episode, its hint (``env.hint``) last, tokenised on its own
    (``hint_ids``); call right after ``reset``."""
    return _prompt_without_hint(tokenizer, env) + hint_ids(tokenizer, env)


def hint_ids(tokenizer, env: ExpertMathEnv) -> list[int]:
    """The token ids of the episode's hint (none without one)."""
    return tokenizer.encode(env.hint, add_special_tokens=False) if env.hint else []


def _prompt_without_hint(tokenizer, env: ExpertMathEnv) -> list[int]:
    if not getattr(tokenizer, "chat_template", None):
        text = env.transcript[: len(env.transcript) - len(env.hint)]
        return tokenizer.encode(text, add_special_tokens=False)
    messages = chat_messages(env)
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError:  # templates without a system role: the instructions open the user message
        merged = "\n\n".join(message["content"] for message in messages)
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": merged}], tokenize=False, add_generation_prompt=True
        )
    return tokenizer.encode(text, add_special_tokens=False)
