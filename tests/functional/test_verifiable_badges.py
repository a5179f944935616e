"""Verifiable badges (Open Badges 3.0) end to end: a participant who passed every check gets a
thank-you mail linking their credential; the credential, the issuer's key and the achievement are
published; PyJWT verifies the credential with the key the issuer's routes publish; the baked image
carries it; nobody else has one, and no other token opens one."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest

from chalicelib.services import links
from tests.admintools import activate, api, callback, participant
from tests.badgetools import decoded, itxt, make_png, read_chunks
from tests.factory import write_checks

WORKSHOP = "WKSHP-BADGE"
CHECKS = ["one", "two"]
SVG = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><circle r='4'/></svg>"
LINK = re.compile(r"https://wod\.example(/openbadges/credentials/[A-Za-z0-9_.-]+)")


@pytest.fixture
def settings(settings, tmp_path):
    """The badge images are read from the test's workshop folders."""
    return dataclasses.replace(settings, workshops_dir=str(tmp_path / "workshops"))


def workshop(sync, tmp_path: Path, badge: str | None = "badge.png", workshop_id: str = WORKSHOP) -> None:
    folder = tmp_path / "workshops" / workshop_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "badge.png").write_bytes(make_png(4, 3))
    (folder / "badge.svg").write_text(SVG)
    write_checks(folder, CHECKS)
    sync((workshop_id, {"seats": 3, "title": "Badges & <friends>", "description": "Earn it.", "badge": badge}))


def finish(client, platform, email: str, passed: int | None, workshop_id: str = WORKSHOP) -> dict:
    """Register, run and end a session; the cleanup measured ``passed`` of the checks."""
    created = participant(platform, workshop_id, email, first="Ada")
    activate(client, platform, created)
    api(client, platform, "POST", f"/api/admin/registrations/{created['id']}/end")
    completion = None if passed is None else round(100 * passed / len(CHECKS), 1)
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "cleaned",
                                "completion": completion, "checks_passed": passed})
    return created


def thanks(recording, email: str):
    [mail] = [e for e in recording.sent if e.to.lower() == email.lower() and e.subject.startswith("Thank you")]
    return mail


def get(client, path: str):
    return client.http.get(path)


def as_json(response) -> dict:
    return json.loads(response.body)


@pytest.fixture
def earned(client, platform, sync, recording, tmp_path):
    workshop(sync, tmp_path)
    created = finish(client, platform, "Ada.Lovelace@Example.com", passed=2)
    return created


def credential_path(platform, created) -> str:
    return urlsplit(links.credential_url(platform, created["id"])).path


def test_the_thank_you_mail_links_the_credential_that_verifies_against_the_issuers_published_key(
        client, platform, recording, earned):
    mail = thanks(recording, "Ada.Lovelace@Example.com")
    [path] = set(LINK.findall(mail.text))
    assert path == credential_path(platform, earned)
    for suffix in ("", "/jwt", "/image"):
        assert f"https://wod.example{path}{suffix}\n" in mail.text
        assert f'href="https://wod.example{path}{suffix}"' in mail.html
    assert "verifiable credential (Open Badges 3.0)" in mail.text

    answer = get(client, f"{path}/jwt")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/vc+jwt"
    token = answer.body.decode()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["typ"] == "vc+jwt"

    issuer = get(client, "/openbadges/issuer")
    assert issuer.status_code == 200 and issuer.headers["Content-Type"] == "application/json"
    profile = as_json(issuer)
    assert profile["id"] == "https://wod.example/openbadges/issuer" and profile["type"] == ["Profile"]
    assert profile["name"] == "Workshops-on-Demand"  # the display name of the mail sender
    # the kid is where the key is published; the JWKS lists the same key
    assert header["kid"].startswith("https://wod.example/openbadges/keys/")
    published = get(client, urlsplit(header["kid"]).path)
    assert published.status_code == 200 and published.headers["Content-Type"] == "application/jwk+json"
    jwk = as_json(published)
    key_set = get(client, "/openbadges/jwks")
    assert key_set.headers["Content-Type"] == "application/jwk-set+json" and as_json(key_set)["keys"] == [jwk]
    assert jwt.PyJWKSet(as_json(key_set)["keys"])[header["kid"]].key_id == header["kid"]

    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["EdDSA"], issuer=profile["id"],
                        options={"require": ["iss", "sub", "jti", "nbf"]})
    view = get(client, path)
    assert view.status_code == 200 and view.headers["Content-Type"] == "application/json"
    assert as_json(view) == claims  # the JSON view is what is signed
    assert claims["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert claims["issuer"]["id"] == profile["id"] and claims["issuer"]["name"] == profile["name"]
    [identity] = claims["credentialSubject"]["identifier"]
    digest = hashlib.sha256(f"ada.lovelace@example.com{identity['salt']}".encode()).hexdigest()
    assert identity["identityHash"] == f"sha256${digest}" and identity["identityType"] == "emailAddress"
    finished_at = platform.stores.registrations.get(earned["id"]).finished_at
    assert claims["validFrom"] == finished_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert claims["nbf"] == int(finished_at.timestamp())

    earned_achievement = claims["credentialSubject"]["achievement"]
    assert earned_achievement["name"] == "Badges & <friends>"
    assert earned_achievement["image"]["id"] == f"https://wod.example/badges/{WORKSHOP}"
    assert "every one of its 2 exercise checks" in earned_achievement["criteria"]["narrative"]
    achievement = get(client, urlsplit(earned_achievement["id"]).path)
    assert achievement.status_code == 200 and achievement.headers["Content-Type"] == "application/json"
    assert {k: v for k, v in as_json(achievement).items() if k != "@context"} == earned_achievement
    for response in (issuer, published, key_set, view, answer, achievement):  # verifiers in browsers read them too
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert view.headers["Cache-Control"] == "no-store" and view.headers["X-Robots-Tag"] == "noindex"


def test_the_baked_png_carries_the_same_jwt_and_the_plain_image_stays_as_it_is(client, platform, earned, tmp_path):
    path = credential_path(platform, earned)
    token = get(client, f"{path}/jwt").body.decode()
    baked = client.http.get(f"{path}/image", headers={"Accept": "image/png,*/*"})  # as a browser asks
    assert baked.status_code == 200 and baked.headers["Content-Type"] == "image/png"
    chunks = read_chunks(baked.body)  # every CRC valid
    [credential] = [itxt(body) for kind, body in chunks if kind == b"iTXt"]
    assert credential["keyword"] == "openbadgecredential" and credential["compressed"] == 0
    assert credential["text"] == token
    original = (tmp_path / "workshops" / WORKSHOP / "badge.png").read_bytes()
    assert decoded(baked.body) == decoded(original)
    plain = client.http.get(f"/badges/{WORKSHOP}", headers={"Accept": "image/png"})
    assert plain.status_code == 200 and plain.body == original


def test_an_svg_badge_is_baked_with_an_openbadges_credential_element(client, platform, sync, recording, tmp_path):
    workshop(sync, tmp_path, badge="badge.svg")
    created = finish(client, platform, "grace@example.com", passed=2)
    path = credential_path(platform, created)
    baked = get(client, f"{path}/image")
    assert baked.status_code == 200 and baked.headers["Content-Type"] == "image/svg+xml"
    assert "default-src 'none'" in baked.headers["Content-Security-Policy"]
    token = get(client, f"{path}/jwt").body.decode()
    svg = baked.body.decode() if isinstance(baked.body, bytes) else baked.body
    assert f"<openbadges:credential><![CDATA[{token}]]></openbadges:credential>" in svg
    assert 'xmlns:openbadges="https://purl.imsglobal.org/ob/v3p0"' in svg


def test_a_badge_hosted_elsewhere_is_named_by_the_credential_but_not_baked(client, platform, sync, recording,
                                                                          tmp_path):
    workshop(sync, tmp_path, badge="https://cdn.example/badge.png")
    created = finish(client, platform, "grace@example.com", passed=2)
    mail = thanks(recording, "grace@example.com")
    path = credential_path(platform, created)
    assert f"https://wod.example{path}\n" in mail.text and f"{path}/image" not in mail.text
    claims = as_json(get(client, path))
    assert claims["credentialSubject"]["achievement"]["image"]["id"] == "https://cdn.example/badge.png"
    image = get(client, f"{path}/image")
    assert image.status_code == 404 and "download the credential itself" in image.body.decode()


def test_the_status_page_and_the_api_of_a_finished_registration_that_earned_it_link_it(client, platform, earned):
    action_token = links.action_token(platform, earned["id"])
    path = credential_path(platform, earned)
    page = get(client, f"/registrations/{action_token}").body.decode()
    assert f'<a href="https://wod.example{path}">the credential</a>' in page
    assert f'href="https://wod.example{path}/image"' in page
    shown = as_json(get(client, f"/api/registrations/{action_token}"))
    assert shown["verifiable_badge"] == {"credential": f"https://wod.example{path}",
                                         "jwt": f"https://wod.example{path}/jwt",
                                         "image": f"https://wod.example{path}/image"}


def test_a_registration_that_did_not_pass_every_check_has_no_credential(client, platform, sync, recording,
                                                                       tmp_path):
    workshop(sync, tmp_path)
    created = finish(client, platform, "mo@example.com", passed=1)
    mail = thanks(recording, "mo@example.com")
    assert "/openbadges/" not in mail.text and "/openbadges/" not in mail.html
    path = credential_path(platform, created)
    for suffix in ("", "/jwt"):
        answer = get(client, f"{path}{suffix}")
        assert answer.status_code == 404 and as_json(answer)["error"] == "not_found"
        assert "has not earned the workshop's badge" in as_json(answer)["message"]
    image = get(client, f"{path}/image")
    assert image.status_code == 404 and "text/html" in image.headers["Content-Type"]
    action_token = links.action_token(platform, created["id"])
    assert as_json(get(client, f"/api/registrations/{action_token}"))["verifiable_badge"] is None
    assert "/openbadges/" not in get(client, f"/registrations/{action_token}").body.decode()


def test_a_registration_still_running_has_no_credential(client, platform, sync, recording, tmp_path):
    workshop(sync, tmp_path)
    created = participant(platform, WORKSHOP, "early@example.com")
    activate(client, platform, created)
    answer = get(client, credential_path(platform, created))
    assert answer.status_code == 404 and as_json(answer)["error"] == "not_found"


@pytest.mark.parametrize("token", ["action", "bare", "forged", "other-purpose-key", "long", "unicode", "dots"])
def test_no_other_token_opens_a_credential(client, platform, earned, token):
    good = credential_path(platform, earned).rsplit("/", 1)[1]
    registration_id, mac = good.rsplit(".", 1)
    other = "y" if registration_id.endswith("x") else "x"  # another registration's id
    tokens = {"action": links.action_token(platform, earned["id"]), "bare": registration_id,
              "forged": f"{registration_id}.{'A' * len(mac)}",
              "other-purpose-key": f"{registration_id[:-1]}{other}.{mac}",
              "long": f"{'a' * 200}.{mac}", "unicode": f"{registration_id}.{mac[:-1]}%C3%A9", "dots": "..."}
    for suffix in ("", "/jwt"):
        answer = get(client, f"/openbadges/credentials/{tokens[token]}{suffix}")
        assert answer.status_code == 404, (suffix, answer.body)
        assert as_json(answer) == {"error": "not_found", "message": "No verifiable badge has this link."}
    assert get(client, f"/openbadges/credentials/{tokens[token]}/image").status_code == 404


def test_a_credential_token_opens_no_registration(client, platform, earned):
    token = credential_path(platform, earned).rsplit("/", 1)[1]
    assert get(client, f"/registrations/{token}").status_code == 404
    assert get(client, f"/api/registrations/{token}").status_code == 404
    assert get(client, f"/survey/{token}").status_code == 404


@pytest.mark.parametrize("path", ["/openbadges/achievements/WKSHP-NOPE", "/openbadges/achievements/wkshp-badge",
                                  f"/openbadges/achievements/WKSHP-{'A' * 40}", "/openbadges/keys/not-our-key",
                                  "/openbadges/achievements/..%2Fissuer"])
def test_unknown_achievements_and_keys_are_404_json(client, platform, earned, path):
    answer = get(client, path)
    assert answer.status_code == 404 and as_json(answer)["error"] == "not_found"


def test_an_inactive_workshops_achievement_is_still_published(client, platform, earned):
    assert api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"active": False})[0] == 200
    assert get(client, f"/openbadges/achievements/{WORKSHOP}").status_code == 200
    assert get(client, credential_path(platform, earned)).status_code == 200


def test_without_its_secret_the_issuer_answers_503_not_500(client, platform, earned):
    secrets = Path(platform.settings.secrets_file)
    stored = json.loads(secrets.read_text())
    secrets.write_text(json.dumps({k: v for k, v in stored.items() if k != "badge_key"}))
    for path in ("/openbadges/jwks", credential_path(platform, earned)):
        answer = get(client, path)
        assert answer.status_code == 503 and as_json(answer)["error"] == "unavailable"
