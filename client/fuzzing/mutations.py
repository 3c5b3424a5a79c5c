"""Byte mutations, random and crafted, all drawn from one seeded ``random.Random``.

*Random* damage (bit flips, byte overwrites, insertions, deletions, truncation, trailing bytes,
repeated chunks) is what disks and transfers do; every byte of an ``.fcz`` is under a CRC, so a
reader must report all of it. *Crafted* damage changes one part of a container (a value of the
JSON header, a stream table length, bytes of a pixel or DICOM-header stream, a stream cut short)
and then recomputes every CRC and length with the writer's own packing, so only the checks above
the framing (header schema, decoding, the recorded decoded-pixel digest, the DICOM re-read) stand
between it and a wrong output.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from fedcodec.shared.container.layout import (
    FOOTER_SIZE,
    PREAMBLE_SIZE,
    STREAM_ENTRY_SIZE,
    parse_preamble,
)
from fedcodec.shared.container.writer import pack_container

INTERESTING = (0, 1, 0x7F, 0x80, 0xFF)
INTERESTING_INTS = (0, 1, -1, 2, 255, 256, 65535, 65536, 2**31 - 1, 2**32, -(2**31), 10**9)


@dataclass(frozen=True)
class Mutation:
    """The mutated bytes and a short name of what was done (for the per-kind counts)."""

    data: bytes
    kind: str
    crafted: bool


def random_mutation(data: bytes, rng: random.Random) -> Mutation:
    """One kind of random damage, anywhere in ``data``."""
    kinds: list[tuple[str, Callable[[bytearray, random.Random], None]]] = [
        ("bitflip", _bitflips),
        ("byte", _bytes),
        ("insert", _insert),
        ("delete", _delete),
        ("truncate", _truncate),
        ("append", _append),
        ("repeat", _repeat),
    ]
    kind, mutate = rng.choice(kinds)
    buffer = bytearray(data)
    mutate(buffer, rng)
    if bytes(buffer) == data:  # e.g. a byte overwritten with itself: force a change
        buffer[rng.randrange(len(buffer))] ^= 0x01
    return Mutation(bytes(buffer), f"random-{kind}", False)


def _bitflips(buffer: bytearray, rng: random.Random) -> None:
    for _ in range(rng.choice((1, 1, 2, 4, 16))):
        position = rng.randrange(len(buffer))
        buffer[position] ^= 1 << rng.randrange(8)


def _bytes(buffer: bytearray, rng: random.Random) -> None:
    for _ in range(rng.choice((1, 2, 8))):
        buffer[rng.randrange(len(buffer))] = rng.choice((*INTERESTING, rng.randrange(256)))


def _insert(buffer: bytearray, rng: random.Random) -> None:
    position = rng.randrange(len(buffer) + 1)
    buffer[position:position] = rng.randbytes(rng.choice((1, 2, 7, 64)))


def _delete(buffer: bytearray, rng: random.Random) -> None:
    position = rng.randrange(len(buffer))
    del buffer[position : position + rng.choice((1, 2, 9, 100))]


def _truncate(buffer: bytearray, rng: random.Random) -> None:
    del buffer[rng.randrange(len(buffer)) :]


def _append(buffer: bytearray, rng: random.Random) -> None:
    buffer.extend(rng.randbytes(rng.choice((1, 16, 300))))


def _repeat(buffer: bytearray, rng: random.Random) -> None:
    start = rng.randrange(len(buffer))
    chunk = buffer[start : start + rng.choice((4, 32, 256))]
    position = rng.randrange(len(buffer) + 1)
    buffer[position:position] = chunk


@dataclass
class ContainerParts:
    """An ``.fcz`` taken apart along its framing (no checks beyond what splitting needs)."""

    version: int
    header: bytes
    streams: list[bytes]

    @classmethod
    def split(cls, data: bytes) -> ContainerParts:
        preamble = parse_preamble(data[:PREAMBLE_SIZE], len(data))
        table_start = PREAMBLE_SIZE + preamble.header_length
        streams, position = [], preamble.data_offset
        for index in range(preamble.stream_count):
            entry = table_start + STREAM_ENTRY_SIZE * index
            length = int.from_bytes(data[entry + 8 : entry + 12], "little")
            streams.append(data[position : position + length])
            position += length
        assert position + FOOTER_SIZE == len(data), "seed containers are well formed"
        return cls(preamble.version, data[PREAMBLE_SIZE:table_start], streams)

    def pack(self) -> bytes:
        return b"".join(pack_container(self.version, self.header, self.streams))


def crafted_container_mutation(data: bytes, rng: random.Random) -> Mutation:
    """Change one part of a well-formed container, then recompute every CRC and length."""
    parts = ContainerParts.split(data)
    kind = rng.choice(("json-value", "json-value", "json-bytes", "stream-bytes", "stream-bytes",
                       "stream-cut", "stream-swap", "stream-drop"))
    if kind == "json-value":
        parts.header, kind = _mutate_json_value(parts.header, rng)
    elif kind == "json-bytes":
        header = bytearray(parts.header)
        _bytes(header, rng)
        parts.header = bytes(header)
    elif kind in ("stream-bytes", "stream-cut"):
        index = rng.randrange(len(parts.streams))
        stream = bytearray(parts.streams[index])
        if not stream:
            stream.extend(rng.randbytes(4))
        elif kind == "stream-bytes":
            rng.choice((_bitflips, _bytes, _insert, _delete, _repeat))(stream, rng)
        else:
            _truncate(stream, rng)
        kind += "-header" if _is_header_stream(parts, index) else "-pixels"
        parts.streams[index] = bytes(stream)
    elif kind == "stream-swap" and len(parts.streams) > 1:
        a, b = rng.sample(range(len(parts.streams)), 2)
        parts.streams[a], parts.streams[b] = parts.streams[b], parts.streams[a]
    else:
        kind = "stream-drop"
        del parts.streams[rng.randrange(len(parts.streams))]
    mutated = parts.pack()
    if mutated == data:
        return random_mutation(data, rng)
    return Mutation(mutated, f"crafted-{kind}", True)


def _is_header_stream(parts: ContainerParts, index: int) -> bool:
    try:
        series = json.loads(parts.header)["series"]
        return any(entry["headers"]["stream"] == index for entry in series)
    except (ValueError, KeyError, TypeError):
        return False


def _mutate_json_value(header: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Replace one leaf of the header JSON by a value of the same or another type."""
    document = json.loads(header)
    leaves: list[tuple[object, object]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                leaves.append((node, key))
                walk(value)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                leaves.append((node, index))
                walk(value)

    walk(document)
    parent, key = rng.choice(leaves)
    old = parent[key]  # type: ignore[index]
    if isinstance(old, bool) or rng.random() < 0.15:
        new: object = rng.choice((None, True, False, "x", [], {}, -1, 0.5))
    elif isinstance(old, int):
        new = rng.choice((old + 1, old - 1, old * 2, rng.choice(INTERESTING_INTS)))
    elif isinstance(old, float):
        new = rng.choice((old + 1.0, -old, 0.0, 1e308, old * 2))
    elif isinstance(old, str):
        new = _mutate_text(old, rng)
    elif isinstance(old, list) and old:
        new = old[:-1] if rng.random() < 0.5 else [*old, old[-1]]
    else:
        new = None
    if rng.random() < 0.1 and isinstance(parent, dict):
        del parent[key]
        what = "json-drop-key"
    else:
        parent[key] = new  # type: ignore[index]
        what = "json-value"
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return text.encode(), what


def _mutate_text(text: str, rng: random.Random) -> str:
    if not text:
        return rng.choice(("x", "0", "\u00e9"))
    position = rng.randrange(len(text))
    replacement = rng.choice(("0", "9", "x", ".", "-", "", text[position] * 2, "\u00e9"))
    return text[:position] + replacement + text[position + 1 :]


def crafted_dicom_mutation(data: bytes, rng: random.Random) -> Mutation:
    """DICOM damage that keeps the file parseable-looking: a value or a length changed in place.

    Element values and 16/32-bit length fields are found by the explicit-VR little-endian
    layout the seeds use; changing a length desynchronises everything after it, which is the
    damage that makes lenient parsers produce odd datasets rather than fail at once.
    """
    buffer = bytearray(data)
    start = 132 if data[128:132] == b"DICM" else 0
    if len(buffer) <= start + 8:
        return random_mutation(data, rng)
    kind = rng.choice(("length", "vr", "tag", "value"))
    # walk elements to pick a real one
    offsets = []
    position = start
    while position + 8 <= len(buffer) and len(offsets) < 400:
        vr = bytes(buffer[position + 4 : position + 6])
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            length = int.from_bytes(buffer[position + 8 : position + 12], "little")
            header = 12
        else:
            length = int.from_bytes(buffer[position + 6 : position + 8], "little")
            header = 8
        offsets.append((position, header, length))
        if length == 0xFFFFFFFF:
            break
        position += header + length
    position, header, length = rng.choice(offsets)
    if kind == "length":
        width = 4 if header == 12 else 2
        field = position + header - width
        value = rng.choice((0, 1, length + 1, max(length - 1, 0), length * 2, 0xFFFF,
                            0xFFFFFFFF if width == 4 else 0x7FFF))
        buffer[field : field + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    elif kind == "vr":
        buffer[position + 4 : position + 6] = rng.choice((b"SQ", b"UN", b"OB", b"US", b"DS", b"zz"))
    elif kind == "tag":
        buffer[position : position + 4] = rng.randbytes(4)
    else:
        value_start = position + header
        span = min(length, len(buffer) - value_start)
        for _ in range(rng.choice((1, 3)) if span > 0 else 0):
            buffer[value_start + rng.randrange(span)] = rng.choice(
                (*INTERESTING, rng.randrange(256), ord("\\"), ord("9"))
            )
    mutated = bytes(buffer)
    if mutated == data:
        return random_mutation(data, rng)
    return Mutation(mutated, f"crafted-dicom-{kind}", True)
