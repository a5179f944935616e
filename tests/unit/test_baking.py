"""Baking a credential into the badge image (chalicelib/domain/baking.py), read back by hand: the
PNG's iTXt chunk ``openbadgecredential`` (valid CRCs, the image still decodes to the same pixels),
the SVG's ``<openbadges:credential>`` as an XML parser sees it; one credential per image."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from chalicelib.domain.baking import UnbakeableImage, bake, bake_png, bake_svg
from tests.badgetools import chunk, decoded, itxt, make_png, read_chunks

JWT = "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJodHRwczovL3dvZC5leGFtcGxlIn0.c2lnbmF0dXJlLWJ5dGVz"
OTHER = "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJvdGhlciJ9.b3RoZXItc2lnbmF0dXJl"
OB = "{https://purl.imsglobal.org/ob/v3p0}"
SVG = "{http://www.w3.org/2000/svg}"


def credential_chunks(png: bytes) -> list[dict]:
    return [itxt(body) for kind, body in read_chunks(png) if kind == b"iTXt"
            and itxt(body)["keyword"] == "openbadgecredential"]


def test_a_baked_png_carries_the_jwt_in_one_uncompressed_itxt_chunk_and_still_decodes():
    original = make_png(5, 3, extra=[(b"tEXt", b"Title\0Python badge")])
    baked = bake_png(original, JWT)
    chunks = read_chunks(baked)  # every CRC checked
    assert [kind for kind, _ in chunks] == [b"IHDR", b"tEXt", b"IDAT", b"iTXt", b"IEND"]
    assert credential_chunks(baked) == [{"keyword": "openbadgecredential", "compressed": 0, "method": 0,
                                         "language": "", "translated": "", "text": JWT}]
    assert decoded(baked) == decoded(original)  # the same pixels
    assert (b"tEXt", b"Title\0Python badge") in chunks  # the image's own text is kept


def test_baking_a_baked_png_again_replaces_its_credential():
    twice = bake_png(bake_png(make_png(), OTHER), JWT)
    assert [c["text"] for c in credential_chunks(twice)] == [JWT]
    # another iTXt (not a credential) stays
    with_note = make_png(extra=[(b"iTXt", b"Comment\0\0\0\0\0made by hand")])
    assert [itxt(b)["keyword"] for k, b in read_chunks(bake_png(with_note, JWT)) if k == b"iTXt"] == [
        "Comment", "openbadgecredential"]


@pytest.mark.parametrize("image", [
    b"GIF89a not a png",
    make_png()[:-6],  # cut inside IEND
    make_png()[:8] + chunk(b"IDAT", b"x") + chunk(b"IEND", b""),  # no IHDR first
    make_png()[:-12],  # no IEND
])
def test_a_png_that_is_not_one_is_refused(image):
    with pytest.raises(UnbakeableImage):
        bake_png(image, JWT)


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


@pytest.mark.parametrize("svg", [
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><circle r='4'/></svg>",
    "<svg xmlns='http://www.w3.org/2000/svg'/>",
    "<?xml version='1.0' encoding='UTF-8'?>\n<!-- <svg> in a comment -->\n"
    "<!DOCTYPE svg PUBLIC '-//W3C//DTD SVG 1.1//EN' 'http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd'>\n"
    "<svg xmlns=\"http://www.w3.org/2000/svg\" data-note=\"a > b\">\n  <title>Badge</title>\n</svg>\n",
])
def test_a_baked_svg_has_the_credential_element_first_in_the_open_badges_namespace(svg):
    root = parsed(bake_svg(svg, JWT))
    assert root.tag == f"{SVG}svg"
    first = list(root)[0]
    assert first.tag == f"{OB}credential" and first.text == JWT
    assert len(root.findall(f"{OB}credential")) == 1
    assert [child.tag for child in list(root)[1:]] == [child.tag for child in parsed(svg)]  # nothing else moved


def test_baking_a_baked_svg_again_replaces_its_credential_and_namespace():
    once = bake_svg("<svg xmlns='http://www.w3.org/2000/svg' xmlns:openbadges='http://openbadges.org'>"
                    "<rect/></svg>", OTHER)
    twice = parsed(bake_svg(once, JWT))
    assert [c.text for c in twice.iter(f"{OB}credential")] == [JWT]
    assert twice.find(f"{SVG}rect") is not None


@pytest.mark.parametrize("svg", ["<html><svg/></html>", "not xml at all", "<svg:svg xmlns:svg='x'/>"])
def test_an_svg_whose_root_is_not_svg_is_refused(svg):
    with pytest.raises(UnbakeableImage):
        bake_svg(svg, JWT)


def test_bake_takes_the_image_by_its_suffix_and_only_a_compact_jws():
    assert bake(make_png(), ".png", JWT).startswith(b"\x89PNG")
    assert JWT.encode() in bake(b"<svg xmlns='http://www.w3.org/2000/svg'/>", ".svg", JWT)
    with pytest.raises(UnbakeableImage):
        bake(b"GIF89a", ".gif", JWT)
    with pytest.raises(UnbakeableImage):
        bake(b"\xff\xfe<svg/>", ".svg", JWT)
    with pytest.raises(ValueError):
        bake_svg("<svg/>", "]]><script>alert(1)</script>")


@pytest.mark.parametrize(("image", "said"), [
    ("<!DOCTYPE " + "[a]" * 40, "root element is <svg>"),  # an unterminated doctype of many groups
    ("<svg>" + "<openbadges:credential>" * 20000, "never closed"),  # many unclosed old credentials
    ("<svg><openbadges:credential", "cut short"),
])
def test_a_malformed_svg_is_refused_in_one_pass(image, said):
    with pytest.raises(UnbakeableImage, match=said):
        bake_svg(image, JWT)


def test_an_image_too_large_to_be_a_badge_is_not_baked():
    with pytest.raises(UnbakeableImage, match="more than 2 MB"):
        bake(b"<svg>" + b" " * (2 * 1024 * 1024) + b"</svg>", ".svg", JWT)
