"""``python -m local.messages {check,update,init,extract}``: the participant side's message catalogs.

The messages are English, in the participant templates (``{% trans %}``, ``_()``) and the Python
code (``N_()``), as ``babel.cfg`` names them; each other shipped language
(``chalicelib.domain.languages.SHIPPED``) has ``chalicelib/locale/<language>/LC_MESSAGES/messages.po``.

- ``check`` (``make check``): every shipped language has a catalog that holds every message of the
  sources, each translated, none fuzzy, with the placeholders of its message; exit 1 listing what is not.
- ``update``: the sources' messages merged into every catalog (new ones empty, changed ones fuzzy
  with the translation they had, gone ones dropped); then translate what ``check`` lists.
- ``init LANGUAGE``: a new catalog with every message untranslated (then add the language to ``SHIPPED``).
- ``extract [--out FILE]``: the template (``.pot``) for a translation tool (default: dist/messages.pot).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.adapters.translations import LOCALE, catalog_path, complete, read_catalog
from chalicelib.domain.languages import DEFAULT, SHIPPED

if TYPE_CHECKING:
    from babel.messages.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "babel.cfg"
PROJECT = "Workshops-on-Demand"
HEADER = ("# The participant side of Workshops-on-Demand in one language: its pages and emails.\n"
          "# Made and merged by `python -m local.messages`; `make check` wants every entry translated.")


def extract(root: Path = ROOT, mapping: Path = MAPPING) -> Catalog:
    """Every message the sources mark, with where each is used."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with mapping.open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    template = Catalog(project=PROJECT, fuzzy=False)
    for filename, line, message, comments, context in extract_from_dir(root, method_map, options_map):
        template.add(message, None, [(filename, line)], auto_comments=comments, context=context)
    return template


def problems(template: Catalog, catalogs: dict[str, Catalog | None]) -> list[str]:
    """What keeps each catalog from showing every message in its language."""
    found = []
    for language, catalog in catalogs.items():
        if catalog is None:
            found.append(f"{language}: no catalog (python -m local.messages init {language})")
            continue
        for message in template:
            if not message.id:
                continue
            entry = catalog.get(message.id, message.context)
            if entry is None:
                found.append(f"{language}: not in the catalog (python -m local.messages update): {message.id!r}")
            elif entry.fuzzy:
                found.append(f"{language}: fuzzy: {message.id!r}")
            elif not complete(entry):
                found.append(f"{language}: untranslated: {message.id!r}")
        for entry, errors in catalog.check():
            found += [f"{language}: {error}: {entry.id!r}" for error in errors]
    return found


def _write(catalog: Catalog, path: Path) -> None:
    from babel.messages.pofile import write_po

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        write_po(out, catalog, width=100, sort_output=False, ignore_obsolete=True, include_lineno=False)


def shipped_catalogs(locale: Path = LOCALE, languages: Iterable[str] = SHIPPED) -> dict[str, Catalog | None]:
    return {language: read_catalog(catalog_path(language, locale), language)
            if catalog_path(language, locale).is_file() else None
            for language in languages if language != DEFAULT}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.messages", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["check", "update", "init", "extract"])
    parser.add_argument("language", nargs="?", help="init: the new language's code (fr, de, pt...)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "messages.pot", help="extract: where to write")
    args = parser.parse_args(argv)
    template = extract()
    if args.command == "check":
        found = problems(template, shipped_catalogs())
        for problem in found:
            print(problem, file=sys.stderr)
        if found:
            print(f"{len(found)} problem(s) in the message catalogs ({LOCALE.relative_to(ROOT)})", file=sys.stderr)
            return 1
        print(f"{len(template) - 1} message(s), translated in {', '.join(SHIPPED)}")
        return 0
    if args.command == "extract":
        _write(template, args.out)
        print(f"{args.out}: {len(template) - 1} message(s)")
        return 0
    if args.command == "init":
        from babel import Locale, UnknownLocaleError
        from babel.messages.catalog import Catalog

        try:
            Locale.parse(args.language or "")
        except (UnknownLocaleError, ValueError, TypeError):
            parser.error("init needs a language Babel knows, such as de or pt")
        path = catalog_path(args.language)
        if path.exists():
            parser.error(f"{path} exists: update it instead")
        new = Catalog(locale=args.language, project=PROJECT, fuzzy=False, header_comment=HEADER)
        new.update(template)
        _write(new, path)
        print(f"{path.relative_to(ROOT)}: {len(template) - 1} message(s) to translate; add {args.language!r} "
              f"to SHIPPED in chalicelib/domain/languages.py")
        return 0
    for language, catalog in shipped_catalogs().items():
        if catalog is None:
            print(f"{language}: no catalog (python -m local.messages init {language})", file=sys.stderr)
            continue
        catalog.update(template, update_creation_date=False)
        _write(catalog, catalog_path(language))
        print(f"{catalog_path(language).relative_to(ROOT)}: updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
