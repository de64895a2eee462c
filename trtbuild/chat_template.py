"""Render a tokenizer's chat template the way Hugging Face tokenizers do, with only jinja2.

Chat clients (Triton's OpenAI frontend among them) send one ``text_input`` that is already the chat
template applied to the conversation; `trtbuild smoke` does the same, so a smoke test of an instruct
model talks to it as production traffic does. The template comes from the tokenizer directory
(``chat_template.jinja``, else ``tokenizer_config.json``'s ``chat_template``) and is rendered in a sandbox
with the conventions of ``transformers`` (``trim_blocks``, ``lstrip_blocks``, ``raise_exception``,
``strftime_now``, the tokenizer's special tokens as variables); tests compare the result with
``transformers``' ``apply_chat_template``.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from trtbuild.errors import UsageError

TEMPLATE_FILE = "chat_template.jinja"


def load_chat_template(tokenizer_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """(template text or None, tokenizer_config.json) of a tokenizer directory."""
    tokenizer_dir = Path(tokenizer_dir)
    config: dict[str, Any] = {}
    cfg_path = tokenizer_dir / "tokenizer_config.json"
    if cfg_path.is_file():
        try:
            config = json.loads(cfg_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UsageError(f"{cfg_path}: not valid JSON ({exc})") from None
    file = tokenizer_dir / TEMPLATE_FILE
    if file.is_file():
        return file.read_text(encoding="utf-8"), config
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return (template if isinstance(template, str) else None), config


def _token(config: dict[str, Any], name: str) -> str:
    value = config.get(name)
    if isinstance(value, dict):  # AddedToken serialised as a mapping
        value = value.get("content")
    return value if isinstance(value, str) else ""


def render_chat(template: str, messages: list[dict[str, str]], *, config: dict[str, Any] | None = None,
                add_generation_prompt: bool = True) -> str:
    """The conversation ``messages`` ([{"role", "content"}]) as the model's prompt text."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def strftime_now(fmt: str) -> str:
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, **kw: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    cfg = config or {}
    specials = {name: _token(cfg, name) for name in ("bos_token", "eos_token", "unk_token", "pad_token")}
    try:
        return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                **specials)
    except TemplateError as exc:
        raise UsageError(f"the tokenizer's chat template failed: {exc}") from None


def chat_prompt(tokenizer_dir: Path, prompt: str, system_prompt: str | None = None) -> str | None:
    """``prompt`` (and the system turn) through the tokenizer's chat template; None when it has none."""
    template, config = load_chat_template(tokenizer_dir)
    if template is None:
        return None
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
        [{"role": "user", "content": prompt}]
    return render_chat(template, messages, config=config)
