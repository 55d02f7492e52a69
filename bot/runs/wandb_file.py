"""Read the records of a run's `.wandb` transaction log.

wandb 0.31 writes no config.yaml or wandb-summary.json for offline runs; everything lives in
`run-<id>.wandb`, and the only reader ships inside the Go `wandb-core` binary. The format is
LevelDB's log format: 32 KiB blocks of chunks, each with a 7-byte header (CRC, length, type),
after a 7-byte W&B file header. A chunk's CRC is zlib's CRC-32 of its data, seeded with the
CRC-32 of its type byte (as wandb's former Python `datastore.py` wrote it). Each whole record
is a `wandb.proto.wandb_internal_pb2.Record`.

A run that is still being written, or was killed, can end in the middle of a record; the
reader stops cleanly at the first chunk it cannot trust and says why in `error`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2 as pb

from bot.core.errors import BadInput

BLOCK_LEN = 32768
HEADER_LEN = 7
FILE_IDENT = b":W&B"
FILE_MAGIC = 0xBEE1
FILE_VERSION = 0
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

_FILE_HEADER = struct.Struct("<4sHB")
_CHUNK_HEADER = struct.Struct("<IHB")
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}


class RecordReader:
    """Iterate the records of one `.wandb` file, front to back, one block in memory at a time.

    Raises BadInput when the file is missing or is not a W&B log at all. Damage after the
    header ends the iteration early and is described in `error` (None after a clean read).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.error: str | None = None

    def __iter__(self) -> Iterator[pb.Record]:
        self.error = None
        try:
            fp = self.path.open("rb")
        except OSError as exc:
            raise BadInput(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with fp:
            _check_file_header(fp, self.path)
            for data in self._payloads(fp):
                record = pb.Record()
                try:
                    record.ParseFromString(data)
                except DecodeError:
                    self.error = "undecodable record"
                    return
                yield record

    def _payloads(self, fp: BinaryIO) -> Iterator[bytes]:
        """Reassemble FIRST/MIDDLE/LAST chunks into whole record payloads."""
        pending: bytearray | None = None
        for kind, data in self._chunks(fp):
            if kind == FULL and pending is None:
                yield data
            elif kind == FIRST and pending is None:
                pending = bytearray(data)
            elif kind == MIDDLE and pending is not None:
                pending += data
            elif kind == LAST and pending is not None:
                yield bytes(pending + data)
                pending = None
            else:
                self.error = f"chunk of type {kind} out of order"
                return
        if pending is not None and self.error is None:
            self.error = "file ends inside a record"

    def _chunks(self, fp: BinaryIO) -> Iterator[tuple[int, bytes]]:
        block = fp.read(BLOCK_LEN)
        pos = HEADER_LEN  # the file header sits at the start of the first block
        while block:
            if len(block) - pos < HEADER_LEN:
                if len(block) < BLOCK_LEN:
                    if block[pos:].strip(b"\0"):
                        self.error = "file ends inside a chunk header"
                    return
                block, pos = fp.read(BLOCK_LEN), 0  # the block's zero-filled trailer
                continue
            crc, length, kind = _CHUNK_HEADER.unpack_from(block, pos)
            if crc == 0 and length == 0 and kind == 0:
                return  # zero fill: the writer has not got this far
            data = block[pos + HEADER_LEN : pos + HEADER_LEN + length]
            if kind not in _TYPE_CRC:
                self.error = f"unknown chunk type {kind}"
                return
            if len(data) < length:
                self.error = "chunk overruns its block" if len(block) == BLOCK_LEN else "file ends inside a chunk"
                return
            if zlib.crc32(data, _TYPE_CRC[kind]) != crc:
                self.error = "chunk checksum mismatch"
                return
            yield kind, data
            pos += HEADER_LEN + length


def _check_file_header(fp: BinaryIO, path: Path) -> None:
    head = fp.read(HEADER_LEN)
    if len(head) < HEADER_LEN:
        raise BadInput(f"{path} is not a W&B run log: too short")
    ident, magic, version = _FILE_HEADER.unpack(head)
    if ident != FILE_IDENT or magic != FILE_MAGIC:
        raise BadInput(f"{path} is not a W&B run log: bad header")
    if version != FILE_VERSION:
        raise BadInput(f"{path} has unsupported W&B log version {version}")
    fp.seek(0)
