"""The message catalogs of the participant's side, and dates and numbers as each language writes
them (CLDR data, through Babel).

A catalog is read from its ``.po`` file, ``chalicelib/locale/<language>/LC_MESSAGES/messages.po``,
once per process: the ``.po`` files are the source and what the Lambda package ships, so nothing
is compiled at build time. An entry that is empty or fuzzy is left out when it is read, so what
shows instead is the English message, never an empty string or a key. English is the messages
themselves: it has no catalog.
"""
from __future__ import annotations

import gettext
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.domain.languages import DEFAULT, SHIPPED
from chalicelib.domain.text import Text

if TYPE_CHECKING:
    from babel.messages.catalog import Catalog

LOCALE = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"
# English keeps the platform's own unambiguous formats (an ISO date, a 24-hour clock, "26 Nov 2026"),
# which the browser's script (static/page.js) also reads; other languages write CLDR's.
PATTERNS = {"en": {"datetime": "yyyy-MM-dd HH:mm", "date": "dd MMM yyyy", "time": "HH:mm"}}


def catalog_path(language: str, root: Path | None = None) -> Path:
    return (root or LOCALE) / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(path: Path, language: str) -> Catalog:
    from babel.messages.pofile import read_po

    with path.open("rb") as source:
        return read_po(source, locale=language, domain=DOMAIN)


def complete(entry: Any) -> bool:
    """Whether a catalog entry is translated (every plural form) and not fuzzy."""
    forms = entry.string if isinstance(entry.string, tuple | list) else (entry.string,)
    return not entry.fuzzy and all(forms)


def translations_of(catalog: Catalog) -> gettext.NullTranslations:
    """gettext translations of the catalog's complete entries only."""
    from babel.messages.mofile import write_mo
    from babel.support import Translations

    for entry in list(catalog)[1:]:  # the first is the header
        if not complete(entry):
            catalog.delete(entry.id, entry.context)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The shipped language's translations; English (and anything else) is the messages as written."""
    if language == DEFAULT or language not in SHIPPED:
        return gettext.NullTranslations()
    return translations_of(read_catalog(catalog_path(language), language))


def translate(value: Any, language: str) -> Any:
    """A :class:`Text` in ``language`` (its values too); any other value as it is."""
    if not isinstance(value, Text):
        return value
    found = translations(language).gettext(value.msgid)
    if not value.values:
        return found
    return found % {name: translate(given, language) for name, given in value.values.items()}


def _moment(value: datetime | str) -> datetime:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def format_datetime(value: datetime | str, language: str) -> str:
    """A date and a time of day, in UTC, named: ``2026-11-26 09:00 UTC``, ``26 nov. 2026, 09:00 UTC``."""
    from babel import Locale, dates

    when, pattern = _moment(value), PATTERNS.get(language, {}).get("datetime")
    if pattern:
        shown = dates.format_datetime(when, pattern, tzinfo=UTC, locale=language)
    else:
        locale = Locale.parse(language)
        shown = str(locale.datetime_formats["medium"]).format(
            dates.format_time(when, "short", tzinfo=UTC, locale=locale),
            dates.format_date(when.astimezone(UTC), "medium", locale=locale))
    return f"{shown} UTC"


def format_time(value: datetime | str, language: str) -> str:
    """A time of day in UTC, named: ``09:00 UTC``."""
    from babel import dates

    pattern = PATTERNS.get(language, {}).get("time", "short")
    return f"{dates.format_time(_moment(value), pattern, tzinfo=UTC, locale=language)} UTC"


def format_date(value: datetime | str, language: str) -> str:
    """A day (the UTC one): ``26 Nov 2026``, ``26 nov. 2026``."""
    from babel import dates

    pattern = PATTERNS.get(language, {}).get("date", "medium")
    return dates.format_date(_moment(value).astimezone(UTC), pattern, locale=language)


def format_number(value: int | float, language: str) -> str:
    from babel import numbers

    return numbers.format_decimal(value, locale=language)


def format_percent(value: int | float, language: str) -> str:
    """A percentage given as 0-100: ``85%``, ``85 %``."""
    from babel import numbers

    return numbers.format_percent(round(value) / 100, locale=language)


def filters(language: str) -> dict[str, Callable[[Any], str]]:
    """The Jinja filters that write dates and numbers in ``language``."""
    def bound(format_: Callable[[Any, str], str]) -> Callable[[Any], str]:
        return lambda value: format_(value, language)

    return {"datetime": bound(format_datetime), "time": bound(format_time), "date": bound(format_date),
            "number": bound(format_number), "percent": bound(format_percent)}
