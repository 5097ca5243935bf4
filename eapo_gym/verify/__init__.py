"""Answer verification for math rewards: extraction, safe parsing and equivalence checking.

``is_correct(response, gold)`` is the reward signal; ``extract_answer(response)`` finds the final
answer; ``safe_parse(text)`` gives a bounded sympy object for symbolic experts. No function
here evaluates model text as code, and all of them are bounded in size, depth and CPU time.
"""

from .extract import extract_answer
from .safe_parse import safe_parse
from .verifier import is_correct

__all__ = ["extract_answer", "is_correct", "safe_parse"]
