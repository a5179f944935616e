"""Jinja2 for pages, emails and workshop notebooks: one environment per language for the platform's
own templates (autoescaped HTML, strict undefined, Jinja's i18n extension with the language's
catalog), and per-cell rendering of notebooks.

In a participant template, ``{% trans %}`` and ``_()`` mark the text (whitespace trimmed, values
autoescaped: newstyle gettext); a :class:`~chalicelib.domain.text.Text` that Python made (a field's
error, a refusal) is shown in the template's language wherever ``{{ }}`` outputs it; the filters
``datetime``, ``date``, ``time``, ``number`` and ``percent`` write values as the language does."""
from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import Any

import jinja2

from chalicelib.adapters import translations
from chalicelib.domain.languages import DEFAULT, NAMES, SHIPPED
from chalicelib.domain.mail import Email

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def environment(language: str = DEFAULT) -> jinja2.Environment:
    """The templates' environment in a shipped language (any other: the default), one per process."""
    return _environment(language if language in SHIPPED else DEFAULT)


@cache
def _environment(language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
        finalize=partial(translations.translate, language=language),
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations.translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(translations.filters(language))
    env.filters["duration"] = format_duration
    env.globals.update(language=language, languages=[(code, NAMES[code]) for code in SHIPPED])
    return env


# environment.cache_clear() forgets every language's (the tests, the web process's warm-up)
environment.cache_clear = _environment.cache_clear  # type: ignore[attr-defined]


def format_duration(minutes: int | float) -> str:
    hours, mins = divmod(int(minutes), 60)
    if not hours:
        return f"{mins} min"
    return f"{hours} h" if not mins else f"{hours} h {mins} min"


def page(name: str, language: str = DEFAULT, **context) -> str:
    return environment(language).get_template(name).render(**context)


def email(kind: str, to: str, subject: str, headers: dict[str, str] | None = None, language: str = DEFAULT,
          **context) -> Email:
    """Render ``email/<kind>.html`` into one message in ``language`` (the subject too, when it is a
    :class:`~chalicelib.domain.text.Text`): one file holds both parts of a mail, its plain text in
    ``{% block text %}{% autoescape false %}``, its HTML in ``email/layout.html``'s ``body``. The
    text block is rendered alone: what it uses (a macro, a ``set``) is written inside it."""
    language = language if language in SHIPPED else DEFAULT
    subject = translations.translate(subject, language)
    context.setdefault("subject", subject)
    template = environment(language).get_template(f"email/{kind}.html")
    return Email(
        to=to,
        subject=subject,
        text="".join(template.blocks["text"](template.new_context(context))),
        html=template.render(**context),
        headers=headers or {},
    )


class RefusedTemplate(ValueError):
    """Workshop content that the template sandbox refuses (it reaches into Python)."""


@lru_cache(maxsize=1)
def content_environment() -> jinja2.Environment:
    """Workshop content is not the platform's code: its templates render in Jinja's immutable
    sandbox, where attributes such as ``__globals__`` or ``__class__`` and calls that change
    objects are refused (``jinja2.sandbox``)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                         autoescape=False)


def render_content(source: str, variables: Mapping[str, Any]) -> str:
    """One template of workshop content, rendered in the sandbox; RefusedTemplate when the sandbox
    refuses it."""
    from jinja2.exceptions import SecurityError

    try:
        return content_environment().from_string(source).render(**variables)
    except SecurityError as exc:
        raise RefusedTemplate(f"the template sandbox refused it: {exc}") from exc


def render_notebook(source: bytes | str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Every cell of a workshop notebook is a Jinja2 template: render each with ``variables`` in the
    sandbox; the result must be valid nbformat. Returns the notebook as a JSON dict."""
    import nbformat

    nb = nbformat.reads(source if isinstance(source, str) else source.decode("utf-8"), as_version=4)
    for index, cell in enumerate(nb.cells):
        try:
            cell.source = render_content(cell.source, variables)
        except RefusedTemplate as exc:
            raise RefusedTemplate(f"cells[{index}]: {exc}") from exc
    nbformat.validate(nb)
    return json.loads(nbformat.writes(nb))
