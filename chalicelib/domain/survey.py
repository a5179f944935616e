"""The after-workshop survey: three questions (overall rating, pace, would recommend), free text,
and up to five questions of the workshop's own (``survey:`` in its ``workshop.yaml``).

One answer per registration, kept on it (``survey``, ``survey_at``); a finished participant may
answer and change it for :data:`OPEN_DAYS` days after their workshop ended. The rating alone is an
answer (the thank-you mail's rating buttons open the page with it chosen); the rest is optional.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.registration import FINISHED
from chalicelib.domain.text import N_

OPEN_DAYS = 7
RATINGS = (1, 2, 3, 4, 5)
PACES = {"slow": N_("Too slow"), "right": N_("About right"), "fast": N_("Too fast")}
RECOMMEND = {"yes": N_("Yes"), "no": N_("No")}
COMMENT_MAX = 1000
EXTRA_MAX = 300  # characters of a free-text answer to a workshop's own question
EXTRA_FIELD = "q_"  # form field of a workshop question: q_<id>


def open_until(finished_at: datetime | None) -> datetime | None:
    """Until when the participant may answer (or change their answer); None: no survey."""
    return finished_at + timedelta(days=OPEN_DAYS) if finished_at is not None else None


def closes(status: str, finished_at: datetime | None) -> datetime | None:
    """When a registration's survey closes: only a finished one has a survey."""
    return open_until(finished_at) if status == FINISHED else None


def _text(raw: Any, limit: int, field: str, errors: dict[str, str]) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        errors[field] = N_("Text, please.")
        return None
    text = unicodedata.normalize("NFC", raw.replace("\r\n", "\n")).strip()
    if len(text) > limit:
        errors[field] = N_("At most %(limit)s characters (this is %(length)s).", limit=limit, length=len(text))
        return None
    if any((unicodedata.category(ch) == "Cc" and ch not in "\n\t")
           or (unicodedata.category(ch) == "Cf" and ch not in "\u200c\u200d") for ch in text):
        errors[field] = N_("No control or invisible formatting characters.")
        return None
    return text or None


def _choice(raw: Any, allowed: Iterable[str], field: str, errors: dict[str, str]) -> str | None:
    if raw in (None, ""):
        return None
    allowed = list(allowed)
    if raw not in allowed:
        errors[field] = N_("Choose one of: %(choices)s.", choices=", ".join(allowed))
        return None
    return str(raw)


def rating_of(raw: Any) -> int | None:
    """A rating from a link or a form (``"4"``), or None."""
    if isinstance(raw, str) and raw.strip() in {str(r) for r in RATINGS}:
        return int(raw.strip())
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw in RATINGS else None


def parse(form: Mapping[str, Any], questions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The answer in a submitted form: ``rating`` (required), ``pace``, ``recommend``, ``comment``
    and ``q_<id>`` for each of the workshop's ``questions``; every problem named."""
    errors: dict[str, str] = {}
    rating = rating_of(form.get("rating"))
    if rating is None:
        errors["rating"] = N_("Choose a rating from 1 (poor) to 5 (excellent).")
    answer: dict[str, Any] = {"rating": rating,
                              "pace": _choice(form.get("pace"), PACES, "pace", errors),
                              "recommend": _choice(form.get("recommend"), RECOMMEND, "recommend", errors),
                              "comment": _text(form.get("comment"), COMMENT_MAX, "comment", errors)}
    extra: dict[str, str] = {}
    for question in questions:
        field = EXTRA_FIELD + question["id"]
        choices = question.get("choices") or []
        value = (_choice(form.get(field), choices, field, errors) if choices
                 else _text(form.get(field), EXTRA_MAX, field, errors))
        if value is not None:
            extra[question["id"]] = value
    if errors:
        raise InvalidInput(errors, N_("Some answers need attention."))
    answer = {name: value for name, value in answer.items() if value is not None}
    if extra:
        answer["extra"] = extra
    return answer


def columns(answer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The answer as the organiser's columns (CSV, admin API, webhooks)."""
    answer = answer or {}
    return {"survey_rating": answer.get("rating"), "survey_pace": answer.get("pace"),
            "survey_recommend": answer.get("recommend"), "survey_comment": answer.get("comment"),
            "survey_extra": dict(answer.get("extra") or {}) or None}


def answers_in(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The answers that organiser records hold (their :func:`columns`), oldest first, each with its
    workshop."""
    found = [{"workshop": r["workshop"], "rating": r["survey_rating"], "pace": r.get("survey_pace"),
              "recommend": r.get("survey_recommend"), "comment": r.get("survey_comment"),
              "at": r.get("survey_at") or ""} for r in records if r.get("survey_rating") is not None]
    return sorted(found, key=lambda a: a["at"])


def by_workshop(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The :func:`summary` of each workshop's answers in the organiser's records."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for answer in answers_in(records):
        answers.setdefault(answer["workshop"], []).append(answer)
    return {workshop: summary(found) for workshop, found in answers.items()}


def summary(answers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Figures over answers: how many, the mean rating and its spread, the pace and recommendation
    counts, the comments (newest last, as given)."""
    rows = [a for a in answers if a and a.get("rating") in RATINGS]
    ratings = [a["rating"] for a in rows]
    recommend = [a["recommend"] for a in rows if a.get("recommend") in RECOMMEND]
    return {
        "answers": len(rows),
        "rating": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "ratings": {r: ratings.count(r) for r in RATINGS},
        "pace": {p: sum(1 for a in rows if a.get("pace") == p) for p in PACES},
        "recommend": round(100 * recommend.count("yes") / len(recommend)) if recommend else None,
        "comments": [a["comment"] for a in rows if a.get("comment")],
    }
