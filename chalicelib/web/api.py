"""The public JSON contract (also used by tests and automation)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.web.http import (
    client_address,
    ctx,
    etag_of,
    json_errors,
    json_response,
    language,
    not_modified,
    parse_json,
)

api = Blueprint(__name__)


@api.route("/api/workshops", methods=["GET"])
@json_errors
def list_workshops():
    from chalicelib.services import registrations
    return json_response(registrations.catalog(ctx(), language()))


@api.route("/api/registrations", methods=["POST"], content_types=["application/json"])
@json_errors
def create_registration():
    """``202`` and the same body whatever happened: nothing tells whether the address was registered.
    The participant's mail is in the body's ``language`` (a shipped one), else the request's."""
    from chalicelib.services import registrations
    registrations.register(ctx(), parse_json(api.current_request.raw_body), client=client_address(api.current_request),
                           language=language())
    return json_response(registrations.RECEIVED, 202)


@api.route("/api/registrations/{token}", methods=["GET"])
@json_errors
def get_registration(token):
    """The participant's own registration, by the action token of their links; ``304`` when the
    client's ``If-None-Match`` names it as it is."""
    from chalicelib.services import links, participant
    shown = participant.status(ctx(), links.registration_id(ctx(), token))
    etag = etag_of(shown)
    return not_modified(api.current_request.headers, etag) or json_response(
        shown, headers={"ETag": etag, "Cache-Control": "no-cache, private"})


@api.route("/api/registrations/{token}/{action}", methods=["POST"],
           content_types=["application/json"])
@json_errors
def registration_action(token, action):
    """confirm | extend | reset | end | leave — each safe to repeat."""
    from chalicelib.services import links, participant
    return json_response(participant.perform(ctx(), action, links.registration_id(ctx(), token)))
