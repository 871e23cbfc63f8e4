"""Render chat messages into the prompt text a model expects, for text-in/text-out payload formats."""

from __future__ import annotations

from collections.abc import Sequence


def _system_and_turns(messages: Sequence[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


def render(messages: Sequence[dict[str, str]], template: str) -> str:
    """Render ``messages`` with the named chat template (see ``ModelConfig.chat_template``)."""
    if template == "raw":
        # Base (non-instruction-tuned) models: the prompt is the messages' text, nothing added.
        return "\n\n".join(m["content"] for m in messages)
    system, turns = _system_and_turns(messages)
    if template == "llama3":
        parts = ["<|begin_of_text|>"]
        if system:
            parts.append(f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>")
        for m in turns:
            parts.append(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>")
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
        return "".join(parts)
    if template == "mistral":
        out, first = ["<s>"], True
        for m in turns:
            if m["role"] == "user":
                content = f"{system}\n\n{m['content']}" if first and system else m["content"]
                out.append(f"[INST] {content} [/INST]")
                first = False
            else:
                out.append(f" {m['content']}</s>")
        return "".join(out)
    if template == "falcon":
        lines = [system] if system else []
        for m in turns:
            lines.append(f"{'User' if m['role'] == 'user' else 'Falcon'}: {m['content']}")
        lines.append("Falcon:")
        return "\n".join(lines)
    if template == "gemma":
        out = []
        for i, m in enumerate(turns):
            content = f"{system}\n\n{m['content']}" if i == 0 and system else m["content"]
            role = "user" if m["role"] == "user" else "model"
            out.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
        out.append("<start_of_turn>model\n")
        return "".join(out)
    raise ValueError(f"unknown chat template {template!r}")
