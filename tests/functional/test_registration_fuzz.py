"""Any body gives 202/404/422 — never a 500 — and nothing unescaped reaches a page or a header."""
from __future__ import annotations

import json
from email import message_from_bytes, policy

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markupsafe import escape as markup_escape

from chalicelib.adapters.mail import to_mime
from chalicelib.services import links

nasty = st.sampled_from(["<script>alert(1)</script>", "a\r\nBcc: evil@example.com", "\x00", "Zoë & \"Co\"",
                         "O'Brien", "\u202e", "x" * 300, "", " ", "é" * 64])
text = st.one_of(nasty, st.text(max_size=80), st.none(), st.integers(), st.booleans(),
                 st.lists(st.integers(), max_size=2))
emails = st.one_of(st.emails(), nasty, st.just("ok@example.com"), st.just("a@mailinator.com"),
                   st.builds(lambda a: f"{a}@example.com", st.text(max_size=20)))
bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "workshop": st.one_of(st.just("WKSHP-FUZZ"), st.just("WKSHP-NONE"), text),
            "email": emails,
            "first_name": text,
            "last_name": text,
            "company": text,
            "accept_terms": st.one_of(st.booleans(), text),
        },
    ),
    text,
)


def test_any_body_gets_a_defined_answer(client, tables, sync, recording, platform):
    sync(("WKSHP-FUZZ", {"seats": 3}))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    @example({"workshop": "WKSHP-FUZZ", "email": "zoe@example.com", "first_name": "Zoë & \"Co\"",
              "last_name": "O'Brien", "company": "A&B", "accept_terms": True})
    def check(body):
        before, known = len(recording.sent), {r.id for r in tables.customers.scan()}
        response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                    body=json.dumps(body))
        assert response.status_code in (202, 404, 422), response.body
        answer = json.loads(response.body)
        outcomes.add(response.status_code)
        assert answer["message"]
        made = [r for r in tables.customers.scan() if r.id not in known]
        if response.status_code != 202 or not made:
            assert len(recording.sent) == before or response.status_code == 202  # 202: maybe a notice
            return
        [stored] = made
        page = client.http.get(f"/registrations/{links.action_token(platform, stored.id)}").body.decode()
        assert "<script>" not in page
        for sent in recording.sent[before:]:
            mime = message_from_bytes(to_mime(sent, "Workshops <noreply@wod.local>").as_bytes(), policy=policy.default)
            assert len(mime.get_all("To")) == 1 and mime.get_all("Bcc") is None
            assert "\n" not in str(mime["Subject"])
            if sent.html:
                assert str(markup_escape(stored.first_name)) in sent.html

    outcomes: set[int] = set()
    check()
    assert {202, 422} <= outcomes
