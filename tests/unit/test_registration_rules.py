"""Applicant validation: normalisation, field errors, deny list."""
from __future__ import annotations

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.registration import client_key, is_registration_id, new_registration_id, validate_applicant

GOOD = {"email": " Ada@Example.COM ", "first_name": "  Ada  ", "last_name": "Lovelace", "company": "Engines  Ltd",
        "accept_terms": "on"}


def errors_of(data, deny=()):
    with pytest.raises(InvalidInput) as caught:
        validate_applicant(data, deny)
    return caught.value.fields


def test_valid_applicant_is_normalised():
    applicant = validate_applicant(GOOD)
    assert applicant.email == "Ada@example.com"
    assert applicant.email_key == "ada@example.com"
    assert (applicant.first_name, applicant.company) == ("Ada", "Engines Ltd")


def test_every_problem_is_reported_at_once():
    fields = errors_of({"email": "nope", "accept_terms": False})
    assert set(fields) == {"email", "first_name", "last_name", "company", "accept_terms"}
    assert fields["first_name"] == "First name is required."


@pytest.mark.parametrize("value, message", [
    ("a\u0000b", "control"), ("tab\there", "control"), ("zero\u200bwidth", "invisible"),
    ("x" * 65, "at most 64"), ("<b>", "< or >"), (42, "must be text"),
])
def test_names_reject_control_characters_length_and_markup(value, message):
    assert message in errors_of(GOOD | {"first_name": value})["first_name"]


@pytest.mark.parametrize("email", ["plain", "a@b", "a@@example.com", "a\r\n@example.com", "é@example.com",
                                   "x" * 250 + "@example.com"])
def test_bad_emails_are_refused(email):
    assert "email" in errors_of(GOOD | {"email": email})


def test_deny_list_matches_domain_and_subdomains():
    deny = ("mailinator.com",)
    assert "cannot register" in errors_of(GOOD | {"email": "a@mailinator.com"}, deny)["email"]
    assert "cannot register" in errors_of(GOOD | {"email": "a@eu.mailinator.com"}, deny)["email"]
    assert validate_applicant(GOOD | {"email": "a@notmailinator.com"}, deny)


@pytest.mark.parametrize("accepted", [True, "on", "yes", "true", "1"])
def test_terms_accept_form_and_json_values(accepted):
    assert validate_applicant(GOOD | {"accept_terms": accepted})


def test_non_object_bodies_are_invalid_input():
    assert errors_of([1, 2]) == {"body": "Expected a JSON object."}


def test_registration_ids_are_unguessable_and_url_safe():
    ids = {new_registration_id() for _ in range(2000)}
    assert len(ids) == 2000 and all(is_registration_id(i) and len(i) == 24 for i in ids)
    assert all(i[0].isalnum() for i in ids)  # never read as a formula in the organisers' CSV
    assert not is_registration_id("../../etc/passwd") and not is_registration_id("short")


def test_scaled_clock_runs_faster_than_the_wall():
    import time

    from chalicelib.services.context import ScaledClock

    clock = ScaledClock(3600)
    wall, first = time.monotonic(), clock()
    time.sleep(0.05)
    business = (clock() - first).total_seconds()
    elapsed = time.monotonic() - wall  # however long the machine took to wake us
    assert 3600 * 0.05 * 0.9 <= business <= 3600 * (elapsed + 0.01)  # an hour of business time per second
    with pytest.raises(ValueError):
        ScaledClock(0)


def test_a_hold_lasts_the_confirmation_window_unless_confirmation_is_off():
    from datetime import timedelta

    from chalicelib.domain.registration import LIVE_STATUSES, UNCONFIRMED, confirm_window

    assert confirm_window(15, True) == timedelta(minutes=15)
    assert confirm_window(0, True) is None  # off everywhere
    assert confirm_window(15, False) is None  # a workshop's `confirm: false`
    assert UNCONFIRMED in LIVE_STATUSES  # a hold keeps its address's guard


@pytest.mark.parametrize(("address", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:7:1::1", "2001:db8:7:1::/64"),
    ("2001:DB8:7:1:ffff:ffff:ffff:fffe", "2001:db8:7:1::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("not an address", "not an address"),
])
def test_a_client_is_its_ipv4_address_or_its_ipv6_network(address, key):
    assert client_key(address) == key
