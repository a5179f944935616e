"""Which shipped language a request asks for, and the message checker of `make check`."""
from __future__ import annotations

import pytest

from chalicelib.adapters.translations import catalog_path, read_catalog, translate
from chalicelib.domain import languages
from chalicelib.domain.text import N_
from local import messages


@pytest.mark.parametrize(("header", "expected"), [
    ("fr", "fr"),
    ("fr-CA", "fr"),
    ("FR_ca", "fr"),
    ("en-GB,en;q=0.9,fr;q=0.8", "en"),
    ("de;q=1, fr;q=0.2, en;q=0.1", "fr"),
    ("en;q=0.2, fr;q=0.2", "en"),  # the first of equals
    ("fr;q=0", "en"),  # refused
    ("fr;q=zero, en;q=0.1", "en"),
    ("fr;q=nan", "en"),
    ("*", "en"),
    ("", "en"),
    (None, "en"),
])
def test_accept_language_is_read_with_its_q_values(header, expected):
    assert languages.negotiate(header) == expected


def test_the_switchs_cookie_wins_when_it_names_a_shipped_language():
    assert languages.chosen("en", "fr") == "en"
    assert languages.chosen("xx", "fr") == "fr"
    assert languages.chosen(None, None) == languages.DEFAULT


def test_a_text_is_english_and_shown_translated_with_its_values_too():
    text = N_("%(label)s is required.", label=N_("First name"))
    assert text == "First name is required."
    assert translate(text, "fr") == "«\u00a0Prénom\u00a0» est obligatoire."
    assert translate(text, "en") == "First name is required." and translate("plain", "fr") == "plain"


def test_the_shipped_catalogs_are_complete():
    assert messages.main(["check"]) == 0


@pytest.fixture(scope="module")
def template():
    return messages.extract()


def test_the_check_fails_on_an_untranslated_fuzzy_missing_or_misplaced_message(template, capsys):
    catalog = read_catalog(catalog_path("fr"), "fr")
    catalog.get("Pick a workshop").string = ""
    catalog.get("Seats").flags.add("fuzzy")
    catalog.delete("Register")
    catalog.get("Hello %(name)s,").string = "Bonjour %(nom)s,"
    problems = messages.problems(template, {"fr": catalog})
    assert sorted(problems) == sorted([
        "fr: untranslated: 'Pick a workshop'", "fr: fuzzy: 'Seats'",
        "fr: not in the catalog (python -m local.messages update): 'Register'",
        "fr: unknown named placeholder 'nom': 'Hello %(name)s,'"])
    assert messages.problems(template, {"de": None}) == ["de: no catalog (python -m local.messages init de)"]


def test_every_message_of_the_sources_is_extracted(template):
    found = {message.id for message in template}
    assert {"Some fields need attention.", "Pick a workshop", "Confirm your seat: %(title)s",
            "Hello %(name)s,", "You receive this email because this address registered for a workshop. Your "
            "personal data is deleted after the workshop."} <= found
    assert not any("Event report" in str(message) for message in found)  # the organiser's report stays English
