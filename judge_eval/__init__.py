"""judge_eval: a pytest regression suite for LLM judges.

Importing the package is cheap on purpose: no llama-index, torch or network code is loaded
until a stage that needs it runs.
"""

from judge_eval.errors import JudgeEvalError

__all__ = ["JudgeEvalError", "__version__"]
__version__ = "0.1.0"
