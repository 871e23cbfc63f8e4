"""CareQA: grounded, cited answers from a tenant's knowledge base for customer-care agents.

The public API, for use from Python (the command line and the service are built on the same names)::

    from careqa import KnowledgeBaseRetriever, Runtime, load_settings

    runtime = Runtime(load_settings("config/local.yaml"))     # models, index and answer engine, built lazily
    answer = runtime.engine.ask("pharmacy", "What does rejection code 75 mean?")
    retriever = KnowledgeBaseRetriever(retriever=runtime.retriever, tenant="pharmacy")  # in your own chain

* settings: ``load_settings``, ``Settings``;
* retrieval: ``HybridRetriever``, and ``KnowledgeBaseRetriever``, a LangChain retriever over it;
* answers: ``AnswerEngine`` (``Runtime.engine`` builds one from settings), ``Answer``;
* evaluation: ``run_eval`` (retrieval on judged questions), ``load_judged`` and ``run_config`` (answers);
* errors: ``CareQAError``, the root of every error CareQA raises (``careqa/errors.py`` draws the tree).

Everything else is internal and may change. The names load on first use, so ``import careqa.errors`` (the
Lambda handlers do) does not pull in the models' and the retriever's libraries.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name → the module that defines it
_EXPORTS = {
    "Answer": "careqa.types",
    "AnswerEngine": "careqa.answer",
    "CareQAError": "careqa.errors",
    "HybridRetriever": "careqa.retrieve",
    "KnowledgeBaseRetriever": "careqa.retrieve",
    "Runtime": "careqa.runtime",
    "Settings": "careqa.config",
    "load_judged": "careqa.answer_eval",
    "load_settings": "careqa.config",
    "run_config": "careqa.answer_eval",
    "run_eval": "careqa.evaluate",
}
__all__ = [
    "Answer",
    "AnswerEngine",
    "CareQAError",
    "HybridRetriever",
    "KnowledgeBaseRetriever",
    "Runtime",
    "Settings",
    "load_judged",
    "load_settings",
    "run_config",
    "run_eval",
]

if TYPE_CHECKING:
    from careqa.answer import AnswerEngine
    from careqa.answer_eval import load_judged, run_config
    from careqa.config import Settings, load_settings
    from careqa.errors import CareQAError
    from careqa.evaluate import run_eval
    from careqa.retrieve import HybridRetriever, KnowledgeBaseRetriever
    from careqa.runtime import Runtime
    from careqa.types import Answer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'careqa' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
