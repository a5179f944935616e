"""Baking: a badge image that carries its credential (Open Badges 3.0, "Badge Baking").

* **PNG**: an ``iTXt`` chunk with the keyword ``openbadgecredential``, uncompressed, no language
  tag or translated keyword, whose text is the VC-JWT; put just before ``IEND``. A chunk of that
  keyword already in the image is replaced: there is never more than one.
* **SVG**: an ``<openbadges:credential>`` element (namespace ``https://purl.imsglobal.org/ob/v3p0``)
  holding the JWT, the first child of the root ``<svg>``; one already there is replaced.

The image is the workshop's content: it is read as bytes and text, never handed to an XML parser
(no entity is ever expanded); one that is not a PNG or an SVG as these rules read it is refused
with :class:`UnbakeableImage`.
"""
from __future__ import annotations

import re
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_KEYWORD = b"openbadgecredential"
SVG_NAMESPACE = "https://purl.imsglobal.org/ob/v3p0"
JWT_CHARACTERS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# what may come before the root element: an XML declaration, processing instructions, comments, a doctype
PROLOG = re.compile(r"(?:\s|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[[^\]]*\])?\s*>)*", re.S | re.I)
SVG_ROOT = re.compile(r"<svg((?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(/?)>")
NAMESPACE_ATTRIBUTE = re.compile(r"\s+xmlns:openbadges\s*=\s*(?:\"[^\"]*\"|'[^']*')")
CREDENTIAL_OPEN, CREDENTIAL_CLOSE = "<openbadges:credential", "</openbadges:credential"
MAX_IMAGE_BYTES = 2 * 1024 * 1024  # a badge is a picture: anything larger is not baked


class UnbakeableImage(ValueError):
    """The image is not one a credential can be baked into (not a PNG or an SVG as expected)."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data), from ``IHDR`` to ``IEND``; :class:`UnbakeableImage` otherwise."""
    if not data.startswith(PNG_SIGNATURE):
        raise UnbakeableImage("not a PNG image")
    chunks, at = [], len(PNG_SIGNATURE)
    while at < len(data):
        if at + 12 > len(data):
            raise UnbakeableImage("a PNG chunk is cut short")
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, end = data[at + 4:at + 8], at + 12 + length
        if end > len(data) or not kind.isalpha():
            raise UnbakeableImage("a PNG chunk is cut short or has no valid type")
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise UnbakeableImage("a PNG image starts with IHDR and ends with IEND")
    return chunks


def _is_credential_chunk(kind: bytes, data: bytes) -> bool:
    return kind == b"iTXt" and data.split(b"\0", 1)[0] == PNG_KEYWORD


def bake_png(image: bytes, jwt: str) -> bytes:
    """``image`` with the credential's chunk just before ``IEND`` (any earlier one taken out)."""
    _check_jwt(jwt)
    chunks = [(kind, data) for kind, data in png_chunks(image) if not _is_credential_chunk(kind, data)]
    # keyword, NUL, compression flag 0, compression method 0, language tag "", NUL, translated keyword "", NUL, text
    text = PNG_KEYWORD + b"\0" + b"\0\0" + b"\0" + b"\0" + jwt.encode("ascii")
    chunks.insert(len(chunks) - 1, (b"iTXt", text))
    return PNG_SIGNATURE + b"".join(_chunk(kind, data) for kind, data in chunks)


def bake_svg(image: str, jwt: str) -> str:
    """``image`` with the credential's element as the root ``<svg>``'s first child (any earlier one
    taken out) and the ``openbadges`` prefix bound to the Open Badges 3.0 namespace."""
    _check_jwt(jwt)
    start = PROLOG.match(image)
    at = start.end() if start else 0
    root = SVG_ROOT.match(image, at)
    if root is None:
        raise UnbakeableImage("an SVG image's root element is <svg>")
    attributes = NAMESPACE_ATTRIBUTE.sub("", root.group(1))
    opened = f'<svg{attributes} xmlns:openbadges="{SVG_NAMESPACE}">'
    element = f"<openbadges:credential><![CDATA[{jwt}]]></openbadges:credential>"
    rest = _without_credentials(image[root.end():])
    if root.group(2):  # <svg ... />: an empty root
        return f"{image[:at]}{opened}{element}</svg>{rest}"
    return f"{image[:at]}{opened}{element}{rest}"


def _without_credentials(text: str) -> str:
    """``text`` without its ``<openbadges:credential>`` elements, in one pass."""
    kept, at = [], 0
    while (start := text.find(CREDENTIAL_OPEN, at)) >= 0:
        after = text[start + len(CREDENTIAL_OPEN):start + len(CREDENTIAL_OPEN) + 1]
        if after and after not in " \t\r\n/>":  # another element whose name starts the same
            kept.append(text[at:start + 1])
            at = start + 1
            continue
        kept.append(text[at:start])
        opened = text.find(">", start)
        if opened < 0:
            raise UnbakeableImage("an <openbadges:credential> element is cut short")
        if text[opened - 1] != "/":
            closing = text.find(CREDENTIAL_CLOSE, opened)
            opened = text.find(">", closing) if closing >= 0 else -1
            if opened < 0:
                raise UnbakeableImage("an <openbadges:credential> element is never closed")
        at = opened + 1
    kept.append(text[at:])
    return "".join(kept)


def bake(image: bytes, suffix: str, jwt: str) -> bytes:
    """The badge image of ``suffix`` (``.png`` or ``.svg``) with the credential baked in."""
    if len(image) > MAX_IMAGE_BYTES:
        raise UnbakeableImage(f"a badge image of more than {MAX_IMAGE_BYTES // (1024 * 1024)} MB is not baked")
    if suffix == ".png":
        return bake_png(image, jwt)
    if suffix == ".svg":
        try:
            text = image.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnbakeableImage("an SVG image is UTF-8 text") from exc
        return bake_svg(text, jwt).encode("utf-8")
    raise UnbakeableImage(f"a credential is baked into a PNG or an SVG image, not {suffix!r}")


def _check_jwt(jwt: str) -> None:
    """What is baked is a compact JWS: nothing in it can end a CDATA section or need escaping."""
    if not JWT_CHARACTERS.fullmatch(jwt):
        raise ValueError("a credential is baked as a compact JWS (three base64url parts)")
