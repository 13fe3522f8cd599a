"""Streaming safetensors I/O: read tensors lazily, plan shards from shapes, write shard by shard.

Nothing here holds a whole checkpoint in memory:

- :class:`CheckpointReader` parses every shard's header up front (shapes, dtypes, byte ranges;
  missing or truncated shards fail here, before any output is written) and then reads one
  tensor, a range of rows, or raw byte chunks on demand from one open file at a time. It reads
  with plain file I/O (no memory map), so pages of the source never pile up in the process.
- :func:`plan_shards` assigns output tensors to shard files from their shapes and dtypes alone
  (``huggingface_hub.split_torch_state_dict_into_shards`` on meta tensors).
- :class:`SafetensorsStreamWriter` writes one safetensors file whose header is known in advance,
  tensor by tensor and chunk by chunk, so a tensor that is copied unchanged goes from the source
  file to the output file in bounded chunks without ever being converted.

The safetensors format: an 8-byte little-endian header length ``N``, ``N`` bytes of JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``, padded
with spaces to a multiple of 8), then the tensor bytes, contiguous, in offset order.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import mmap
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, ConversionError, ModelSourceError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
SHARD_PATTERN = "model{suffix}.safetensors"
COPY_CHUNK_BYTES = 64 * 1024**2  # bytes per read/cast/write step when a tensor is cast
MMAP_COPY_BYTES = 128 * 1024**2  # source window mapped at a time when copying raw bytes
_MAX_HEADER_BYTES = 100 * 1024**2  # the safetensors spec's own limit

# safetensors dtype strings <-> torch dtypes
ST_TO_TORCH: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
TORCH_TO_ST: dict[torch.dtype, str] = {v: k for k, v in ST_TO_TORCH.items()}
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: file, dtype, shape and absolute byte range in that file."""

    name: str
    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_safetensors_header(
    path: str | os.PathLike[str],
) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parse a safetensors file's header without reading any tensor data.

    Returns:
        ``(tensors, metadata)``: per-name :class:`TensorInfo` (absolute offsets) and the
        ``__metadata__`` dict (empty when absent).

    Raises:
        ConversionError: the file is missing, not safetensors, or shorter than its header says
            (a truncated download or an interrupted copy).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise ConversionError(f"shard {path.name!r} is truncated ({size} bytes)")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
                raise ConversionError(
                    f"shard {path.name!r} is truncated or not a safetensors file "
                    f"(header of {header_len} bytes, file of {size} bytes)"
                )
            header = json.loads(f.read(header_len))
    except FileNotFoundError:
        raise ConversionError(f"shard {path.name!r} is missing from {str(path.parent)!r}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConversionError(f"shard {path.name!r} has a corrupt safetensors header") from None
    if not isinstance(header, dict):
        raise ConversionError(f"shard {path.name!r} has a corrupt safetensors header")
    metadata = header.pop("__metadata__", None) or {}
    base = 8 + header_len
    tensors: dict[str, TensorInfo] = {}
    data_end = 0
    for name, entry in header.items():
        try:
            dtype = ST_TO_TORCH[entry["dtype"]]
            begin, end = (int(x) for x in entry["data_offsets"])
            shape = tuple(int(s) for s in entry["shape"])
        except (KeyError, TypeError, ValueError):
            raise ConversionError(
                f"shard {path.name!r}: unsupported or corrupt entry for tensor {name!r}"
            ) from None
        expected = math.prod(shape) * dtype.itemsize
        if end - begin != expected:
            raise ConversionError(
                f"shard {path.name!r}: tensor {name!r} spans {end - begin} bytes, its shape "
                f"{list(shape)} needs {expected}"
            )
        tensors[name] = TensorInfo(name, path, dtype, shape, base + begin, base + end)
        data_end = max(data_end, end)
    if base + data_end > size:
        raise ConversionError(
            f"shard {path.name!r} is truncated: {size} bytes, its header needs {base + data_end}"
        )
    return tensors, metadata


def weight_files(directory: str | os.PathLike[str]) -> tuple[dict[str, str], Path | None]:
    """Map each tensor name to its shard file name, from the index or the single file.

    Returns:
        ``(weight_map, index_path)`` with ``index_path`` None for a single-file checkpoint.

    Raises:
        ConversionError: no safetensors weights, or an unreadable index.
    """
    directory = Path(directory)
    index_path = directory / INDEX_NAME
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            weight_map = dict(index["weight_map"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ConversionError(
                f"{INDEX_NAME} in {str(directory)!r} is not a valid index (needs a weight_map)"
            ) from None
        return {str(k): str(v) for k, v in weight_map.items()}, index_path
    single = directory / SINGLE_NAME
    if single.is_file():
        tensors, _ = read_safetensors_header(single)
        return {name: SINGLE_NAME for name in tensors}, None
    found = sorted(p.name for p in directory.glob("*.safetensors"))
    if len(found) == 1:
        tensors, _ = read_safetensors_header(directory / found[0])
        return {name: found[0] for name in tensors}, None
    has_bin = any(directory.glob("*.bin"))
    hint = (
        ": only PyTorch .bin weights found; re-save them as safetensors first "
        "(model.save_pretrained(dir))"
        if has_bin
        else ""
    )
    raise ConversionError(
        f"no safetensors weights ({SINGLE_NAME} or {INDEX_NAME}) in {str(directory)!r}{hint}"
    )


def require_safetensors(directory: str | os.PathLike[str]) -> None:
    """Refuse a local checkpoint without safetensors weights before anything loads it.

    Pickled PyTorch weights (``pytorch_model.bin``) can run code when loaded: gqa-retrofit
    never loads them (pass ``use_safetensors=True`` to ``from_pretrained`` as well).

    Raises:
        ModelSourceError: ``directory`` has no safetensors weights (the message says how to
            convert ``.bin`` weights).
    """
    try:
        weight_files(directory)
    except ConversionError as err:
        raise ModelSourceError(f"{err}; gqa-retrofit loads safetensors only") from None


class CheckpointReader:
    """Lazy reader of a (possibly sharded) safetensors checkpoint directory.

    All shard headers are parsed and cross-checked against the index at construction, so a
    missing shard, a truncated shard or an index entry pointing at an absent tensor is reported
    before anything is written. Tensor data is read on demand, from one open file at a time.

    Raises:
        ConversionError: see :func:`weight_files` and :func:`read_safetensors_header`; also when
            the index names a tensor that its shard does not contain.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        weight_map, self.index_path = weight_files(self.directory)
        headers: dict[str, dict[str, TensorInfo]] = {}
        for file_name in dict.fromkeys(weight_map.values()):
            if Path(file_name).name != file_name:
                raise ConversionError(f"index names shard {file_name!r} outside the checkpoint")
            headers[file_name], _ = read_safetensors_header(self.directory / file_name)
        self._infos: dict[str, TensorInfo] = {}
        for name, file_name in weight_map.items():
            info = headers[file_name].get(name)
            if info is None:
                raise ConversionError(
                    f"index maps tensor {name!r} to shard {file_name!r}, which does not contain it"
                )
            self._infos[name] = info
        self.shard_files = list(headers)
        self._handle: io.BufferedReader | None = None
        self._handle_path: Path | None = None
        self._scratch = bytearray()  # reused by chunked reads: no fresh pages per chunk

    # --- metadata -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Tensor names in index order."""
        return list(self._infos)

    def __contains__(self, name: object) -> bool:
        return name in self._infos

    def info(self, name: str) -> TensorInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise ConversionError(f"tensor {name!r} is not in the checkpoint") from None

    @property
    def total_bytes(self) -> int:
        return sum(info.nbytes for info in self._infos.values())

    # --- data -----------------------------------------------------------------------------
    def _file(self, path: Path) -> io.BufferedReader:
        if self._handle_path != path:
            self._close_handle()
            self._handle = path.open("rb")
            self._handle_path = path
        assert self._handle is not None
        return self._handle

    def _read_exact(self, info: TensorInfo, start: int, length: int) -> bytearray:
        f = self._file(info.file)
        f.seek(start)
        buf = bytearray(length)
        got = f.readinto(buf)
        if got != length:
            raise ConversionError(
                f"shard {info.file.name!r} ended early while reading tensor {info.name!r}"
            )
        return buf

    def _read_scratch(self, info: TensorInfo, start: int, length: int) -> memoryview:
        """Read into the reader's reusable buffer; valid until the next scratch read."""
        if len(self._scratch) < length:
            self._scratch = bytearray(length)
        view = memoryview(self._scratch)[:length]
        f = self._file(info.file)
        f.seek(start)
        if f.readinto(view) != length:
            raise ConversionError(
                f"shard {info.file.name!r} ended early while reading tensor {info.name!r}"
            )
        return view

    def fileno(self, name: str) -> int:
        """OS file descriptor of the (now open) shard holding ``name``."""
        return self._file(self.info(name).file).fileno()

    def iter_bytes(self, name: str, chunk_bytes: int = COPY_CHUNK_BYTES) -> Iterator[memoryview]:
        """The raw bytes of tensor ``name``, in chunks of at most ``chunk_bytes``.

        Each chunk is a view of a buffer the reader reuses: consume it (write it out) before
        asking for the next one.
        """
        info = self.info(name)
        pos = info.start
        while pos < info.end:
            n = min(chunk_bytes, info.end - pos)
            yield self._read_scratch(info, pos, n)
            pos += n

    def read_rows(self, name: str, start: int, stop: int, *, scratch: bool = False) -> torch.Tensor:
        """Rows ``start:stop`` of the first dimension of ``name`` (like ``get_slice``).

        With ``scratch=True`` the tensor views the reader's reusable buffer and is only valid
        until the next chunked read (for streaming casts that copy it at once).
        """
        info = self.info(name)
        if not info.shape:
            return self.read(name)
        rows = info.shape[0]
        start, stop = max(0, start), min(rows, stop)
        row_shape = info.shape[1:]
        row_bytes = math.prod(row_shape) * info.dtype.itemsize
        count = max(0, stop - start)
        if count == 0 or row_bytes == 0:
            return torch.empty((count, *row_shape), dtype=info.dtype)
        offset, length = info.start + start * row_bytes, count * row_bytes
        buf = (
            self._read_scratch(info, offset, length)
            if scratch
            else self._read_exact(info, offset, length)
        )
        return torch.frombuffer(buf, dtype=info.dtype).reshape(count, *row_shape)

    def read(self, name: str) -> torch.Tensor:
        """The whole tensor ``name`` (a fresh, writable CPU tensor)."""
        info = self.info(name)
        if info.numel == 0:
            return torch.empty(info.shape, dtype=info.dtype)
        buf = self._read_exact(info, info.start, info.nbytes)
        return torch.frombuffer(buf, dtype=info.dtype).reshape(info.shape)

    def _close_handle(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        self._handle_path = None

    def close(self) -> None:
        """Close the open shard and free the read buffer (the reader stays usable)."""
        self._close_handle()
        self._scratch = bytearray()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ShardPlan:
    """Output file of every tensor, in writing order, decided before any data is read."""

    files: dict[str, list[str]]  # file name -> tensor names in the order they are written
    total_size: int

    @property
    def is_sharded(self) -> bool:
        return len(self.files) > 1

    def weight_map(self) -> dict[str, str]:
        return {name: file for file, names in self.files.items() for name in names}


def parse_shard_size(value: int | str) -> int:
    """Bytes of a size such as ``5GB``, ``500MB`` or an integer.

    Raises:
        ConfigError: the value is not a positive size.
    """
    if isinstance(value, int):
        size = value
    else:
        from huggingface_hub.serialization._base import parse_size_to_int

        try:
            size = parse_size_to_int(value.strip())
        except (ValueError, AttributeError):
            raise ConfigError(
                f"invalid shard size {value!r}: use a number of bytes or a size such as 500MB, 5GB"
            ) from None
    if size <= 0:
        raise ConfigError(f"invalid shard size {value!r}: must be positive")
    return int(size)


def plan_shards(
    entries: Iterable[tuple[str, Sequence[int], torch.dtype]], max_shard_size: int | str = "5GB"
) -> ShardPlan:
    """Assign tensors to output shards from shapes and dtypes alone (meta tensors).

    Tensors keep the given order; a shard is closed when the next tensor would exceed
    ``max_shard_size`` (a larger tensor gets a shard of its own), as ``save_pretrained`` does.
    """
    from huggingface_hub import split_torch_state_dict_into_shards

    meta = {
        name: torch.empty(tuple(shape), dtype=dtype, device="meta")
        for name, shape, dtype in entries
    }
    split = split_torch_state_dict_into_shards(
        meta, max_shard_size=parse_shard_size(max_shard_size), filename_pattern=SHARD_PATTERN
    )
    return ShardPlan(
        files={f: list(names) for f, names in split.filename_to_tensors.items()},
        total_size=int(split.metadata["total_size"]),
    )


def disk_error(err: OSError, path: Path) -> ConversionError | None:
    """A clear :class:`ConversionError` for a full disk or file-size limit, else None."""
    if err.errno in _DISK_FULL:
        from .._fs import final_output

        return ConversionError(
            f"no space left while writing {path.name!r} for {str(final_output(path.parent))!r} "
            f"({os.strerror(err.errno or 0)}); free some space or choose another output location"
        )
    return None


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """A zero-copy byte view of a CPU tensor (made contiguous first when needed)."""
    flat = tensor.detach().contiguous().reshape(-1)
    if flat.numel() == 0:
        return memoryview(b"")
    return flat.view(torch.uint8).numpy().data


class SafetensorsStreamWriter:
    """Write one safetensors file tensor by tensor, the header being known in advance.

    ``entries`` fixes the names, dtypes, shapes and order; :meth:`write` (bytes or a tensor,
    possibly in several calls per tensor) and :meth:`copy_from` (a byte range of another file,
    copied inside the kernel) then fill the tensors in that order. The file is complete only
    after :meth:`close` checked that every byte arrived.

    Raises:
        ConversionError: bytes for the wrong tensor or too many bytes, a missing tensor at
            :meth:`close`, or a full disk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        entries: Sequence[tuple[str, Sequence[int], torch.dtype]],
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        header: dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
        self._sizes: list[tuple[str, int]] = []
        offset = 0
        for name, shape, dtype in entries:
            if dtype not in TORCH_TO_ST:
                raise ConversionError(f"tensor {name!r} has unsupported dtype {dtype}")
            size = math.prod(shape) * dtype.itemsize
            header[name] = {
                "dtype": TORCH_TO_ST[dtype],
                "shape": [int(s) for s in shape],
                "data_offsets": [offset, offset + size],
            }
            self._sizes.append((name, size))
            offset += size
        blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
        blob += b" " * (-len(blob) % 8)
        head = struct.pack("<Q", len(blob)) + blob
        self._current = 0  # index into self._sizes of the tensor being filled
        self._filled = 0  # bytes of that tensor written so far
        self._pos = 0  # absolute file offset of the next byte
        self.bytes_written = 0
        self._fd: int | None = None
        with self._disk_errors():
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            # Size the file up front (as safetensors does): the writes then fill an allocated
            # file instead of extending it.
            os.ftruncate(self._fd, len(head) + offset)
            self._pwrite(memoryview(head))

    @contextlib.contextmanager
    def _disk_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            converted = disk_error(err, self.path)
            if converted is not None:
                raise converted from None
            raise

    def _pwrite(self, buf: memoryview) -> None:
        """Write all of ``buf`` at the current position.

        Every view taken of ``buf`` is released before this returns or raises: a view still
        alive in a traceback would make closing a memory-mapped source fail with
        ``BufferError`` and hide the real error (a full disk).
        """
        if self._fd is None:
            raise ConversionError(f"{self.path.name}: writer is closed")
        with memoryview(buf) as view, view.cast("B") as flat:
            done = 0
            while done < flat.nbytes:
                with flat[done:] as rest:
                    done += os.pwrite(self._fd, rest, self._pos + done)
        self._pos += done

    def _claim(self, name: str, nbytes: int) -> None:
        """Check that ``nbytes`` of tensor ``name`` may come next and account for them."""
        while self._current < len(self._sizes) and self._sizes[self._current][1] == 0:
            self._current += 1
        if self._current >= len(self._sizes):
            raise ConversionError(f"{self.path.name}: unexpected data for {name!r} (file full)")
        expected, size = self._sizes[self._current]
        if name != expected:
            raise ConversionError(f"{self.path.name}: got {name!r}, expected {expected!r} next")
        if self._filled + nbytes > size:
            raise ConversionError(
                f"{self.path.name}: tensor {name!r} got {self._filled + nbytes} bytes, "
                f"its header says {size}"
            )
        if self._fd is None:
            raise ConversionError(f"{self.path.name}: writer is closed")
        self._filled += nbytes
        self.bytes_written += nbytes
        if self._filled == size:
            self._current += 1
            self._filled = 0

    def write(self, name: str, data: torch.Tensor | bytes | bytearray | memoryview) -> None:
        """Append bytes of tensor ``name`` (the next one in order, or the one being filled)."""
        buf = tensor_bytes(data) if isinstance(data, torch.Tensor) else memoryview(data)
        self._claim(name, buf.nbytes)
        with self._disk_errors():
            self._pwrite(buf)

    def copy_from(self, name: str, src_fd: int, offset: int, length: int) -> None:
        """Append ``length`` bytes of file ``src_fd`` at ``offset`` as bytes of tensor ``name``.

        The source is memory-mapped in windows of :data:`MMAP_COPY_BYTES` and each window is
        written with one ``pwrite`` (no decoding, no copy in user space; measured faster than
        ``os.copy_file_range``, which splices 64 KB at a time). Only one window is mapped at a
        time, so resident memory stays bounded.
        """
        self._claim(name, length)
        gran = mmap.ALLOCATIONGRANULARITY
        done = 0
        with self._disk_errors():
            while done < length:
                start = offset + done
                aligned = start - start % gran
                n = min(MMAP_COPY_BYTES, length - done)
                window = mmap.mmap(
                    src_fd, n + start - aligned, offset=aligned, access=mmap.ACCESS_READ
                )
                try:
                    with memoryview(window) as view, view[start - aligned :] as chunk:
                        self._pwrite(chunk)
                finally:
                    window.close()
                done += n

    def close(self) -> None:
        """Close the file; raises when a tensor is missing or incomplete."""
        while self._current < len(self._sizes) and self._sizes[self._current][1] == 0:
            self._current += 1
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with self._disk_errors():
            os.close(fd)
        if self._current < len(self._sizes):
            name, size = self._sizes[self._current]
            raise ConversionError(
                f"{self.path.name}: tensor {name!r} incomplete ({self._filled} of {size} bytes)"
            )

    def abort(self) -> None:
        """Close without checks (the caller discards the file)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def copy_tensor(
    reader: CheckpointReader,
    name: str,
    writer: SafetensorsStreamWriter,
    out_name: str | None = None,
    dtype: torch.dtype | None = None,
    chunk_bytes: int = COPY_CHUNK_BYTES,
) -> None:
    """Stream tensor ``name`` from ``reader`` into ``writer`` without holding it.

    Same dtype: the raw bytes are copied file to file (:meth:`SafetensorsStreamWriter.copy_from`),
    never decoded. Otherwise
    rows are read in chunks of about ``chunk_bytes``, cast, and written.
    """
    info = reader.info(name)
    target = out_name or name
    if dtype is None or dtype == info.dtype:
        writer.copy_from(target, reader.fileno(name), info.start, info.nbytes)
        return
    if not info.shape:
        writer.write(target, reader.read(name).to(dtype))
        return
    row_bytes = max(1, math.prod(info.shape[1:]) * info.dtype.itemsize)
    step = max(1, chunk_bytes // row_bytes)
    for start in range(0, info.shape[0], step):
        writer.write(target, reader.read_rows(name, start, start + step, scratch=True).to(dtype))


def write_index(directory: Path, plan: ShardPlan) -> None:
    """Write ``model.safetensors.index.json`` for a sharded plan (nothing for a single file)."""
    if not plan.is_sharded:
        return
    index = {"metadata": {"total_size": plan.total_size}, "weight_map": plan.weight_map()}
    path = directory / INDEX_NAME
    try:
        path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        converted = disk_error(err, path)
        if converted is not None:
            raise converted from None
        raise
