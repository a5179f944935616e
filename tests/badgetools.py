"""PNG badges for the verifiable badge tests, made and read here byte by byte (independently of
``chalicelib.domain.baking``): a small RGBA image, its chunks with their CRCs checked, its pixels."""
from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pixels(width: int, height: int) -> bytes:
    """Rows of RGBA pixels, each row led by filter type 0 (none), as IDAT holds them."""
    def row(y: int) -> bytes:
        return b"".join(bytes((x * 40 % 256, y * 90 % 256, (x + y) * 17 % 256, 255)) for x in range(width))

    return b"".join(b"\0" + row(y) for y in range(height))


def make_png(width: int = 3, height: int = 2, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A valid 8-bit RGBA PNG; ``extra`` chunks go after IHDR."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    raw = pixels(width, height)
    return (SIGNATURE + chunk(b"IHDR", header) + b"".join(chunk(k, d) for k, d in extra or [])
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def read_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk as (type, data); AssertionError on a bad signature, a cut chunk or a wrong CRC."""
    assert data[:8] == SIGNATURE, "not a PNG"
    found, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert len(body) == length, f"{kind!r} is cut short"
        assert crc == zlib.crc32(kind + body), f"{kind!r} has a wrong CRC"
        found.append((kind, body))
        at += 12 + length
    return found


def decoded(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, the rows of pixels) of an 8-bit RGBA PNG whose rows use no filter."""
    chunks = read_chunks(data)
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, interlace) == (8, 6, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + 4 * width)
    return width, height, raw


def itxt(body: bytes) -> dict[str, object]:
    """An iTXt chunk's fields."""
    keyword, rest = body.split(b"\0", 1)
    compressed, method, rest = rest[0], rest[1], rest[2:]
    language, rest = rest.split(b"\0", 1)
    translated, text = rest.split(b"\0", 1)
    return {"keyword": keyword.decode("latin-1"), "compressed": compressed, "method": method,
            "language": language.decode(), "translated": translated.decode(), "text": text.decode()}
