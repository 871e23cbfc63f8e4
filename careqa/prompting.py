"""Per-tenant prompts, as LangChain prompt templates.

Instruction-tuned models (any chat template) get a system message and the passages. A base model
(``chat_template: raw``) gets a few-shot completion prompt instead: chat-style instructions make such
a model echo the passages back, while worked examples make it answer in the same short form.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate

from careqa.config import PromptConfig
from careqa.types import Passage

MAX_PASSAGE_CHARS = 700


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def format_passages(passages: Sequence[Passage]) -> str:
    lines = []
    for n, p in enumerate(passages, start=1):
        text = " ".join(p.text.split())
        if len(text) > MAX_PASSAGE_CHARS:
            text = text[:MAX_PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
        lines.append(f"[{n}] {text}")
    return "\n".join(lines)


def completion_template(prompt: PromptConfig) -> ChatPromptTemplate:
    shots = "\n\n".join(
        f"Context:\n{_escape(ex.context)}\nQuestion: {_escape(ex.question)}\nAnswer: {_escape(ex.answer)}"
        for ex in prompt.examples
    )
    text = f"{_escape(prompt.instructions)}\n\n{shots}\n\nContext:\n{{context}}\nQuestion: {{question}}\nAnswer:"
    return ChatPromptTemplate.from_messages([("human", text)])


def chat_template(prompt: PromptConfig) -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages(
        [("system", _escape(prompt.instructions)), ("human", "Passages:\n{context}\n\nQuestion: {question}")]
    )


def build_messages(
    prompt: PromptConfig, passages: Sequence[Passage], question: str, *, base_model: bool
) -> list[BaseMessage]:
    template = completion_template(prompt) if base_model else chat_template(prompt)
    return template.format_messages(context=format_passages(passages), question=" ".join(question.split()))
