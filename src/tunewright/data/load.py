"""Reading raw rows from files, streamed, each with its file and line.

Every physical record in an input yields exactly one `RawRow`: either its parsed fields or the
reason it could not be read (bad JSON, undecodable bytes, wrong field count). Nothing is dropped
here; the caller decides what is rejected. Blank lines in JSONL and CSV are not rows and are
counted. An input that would need a guess about which rows it holds (a JSON object of several
lists, a saved DatasetDict of several splits) is refused with what to list instead.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tunewright.errors import InputFileError

SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}


@dataclass
class RawRow:
    file: str
    line: int  # 1-based line where the row starts (JSON, JSONL, CSV) or row number (Parquet)
    data: dict[str, Any] | None = None
    error: str | None = None
    raw: str | None = None  # the unparsed text of a row that could not be read, for rejected.jsonl

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class LoadStats:
    """Per-file counts, so the report can show where rows came from."""

    rows: dict[str, int] = field(default_factory=dict)
    blank_lines: dict[str, int] = field(default_factory=dict)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files to read: each path itself, or the data files (and `save_to_disk` datasets) inside a
    folder, sorted for a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir() and not _is_saved_dataset(path):
            found = _folder_sources(path)
            if not found:
                raise InputFileError(
                    f"{path}: folder holds no data files",
                    hint=f"Supported: {', '.join(sorted(SUFFIXES))} or a save_to_disk dataset.",
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise InputFileError(
                f"data file not found: {path}", hint="Check data.train / data.eval."
            )
    return files


def _folder_sources(folder: Path) -> list[Path]:
    """Data files and saved datasets under `folder`, not descending into saved datasets."""
    found: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            found.extend([child] if _is_saved_dataset(child) else _folder_sources(child))
        elif child.suffix.lower() in SUFFIXES:
            found.append(child)
    return found


def iter_rows(path: Path, stats: LoadStats | None = None) -> Iterator[RawRow]:
    """Stream the rows of one file (or saved dataset folder)."""
    stats = stats if stats is not None else LoadStats()
    name = str(path)
    stats.rows.setdefault(name, 0)
    for row in _reader(path, stats):
        stats.rows[name] += 1
        yield row


def _reader(path: Path, stats: LoadStats) -> Iterator[RawRow]:
    if path.is_dir():
        return _saved_dataset_rows(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputFileError(
            f"{path}: unknown file type '{path.suffix}'",
            hint=f"Use one of {', '.join(sorted(SUFFIXES))}.",
        )
    if kind == "jsonl":
        return _jsonl_rows(path, stats)
    if kind == "json":
        return _json_rows(path)
    if kind in ("csv", "tsv"):
        return _csv_rows(path, "\t" if kind == "tsv" else ",", stats)
    return _parquet_rows(path)


# ---------------------------------------------------------------------------------------------
# Text decoding: UTF-8, UTF-8 with BOM, UTF-16 (by BOM, or by NUL pattern without one).


def detect_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0:
        return "utf-16-le"
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] != 0:
        return "utf-16-be"
    return "utf-8"


def _decoded_lines(handle: BinaryIO) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text, decode error) per physical line; a bad line is decoded with
    replacement characters and its error says at which byte it broke."""
    encoding = detect_encoding(handle.peek(4)[:4] if hasattr(handle, "peek") else b"")
    if encoding.startswith("utf-16"):
        text = io.TextIOWrapper(handle, encoding=encoding, errors="replace", newline="")
        for number, line in enumerate(text, start=1):
            error = "undecodable UTF-16 bytes" if "\ufffd" in line else None
            yield number, line, error
        return
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield number, raw.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            error = f"undecodable bytes (not UTF-8) at byte {exc.start + 1} of the line"
            yield number, raw.decode("utf-8", errors="replace"), error


# ---------------------------------------------------------------------------------------------
# JSON: valid text that Python cannot hold is a clear error too.


class JSONLimitError(ValueError):
    """Valid JSON that cannot be used: too deep, a number too long, or not Unicode text."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(text: str) -> Any:
    """`json.loads`, where a syntax error stays `json.JSONDecodeError` and valid JSON that
    cannot be used raises `JSONLimitError`: nesting past Python's recursion limit, an integer
    over Python's digit limit (4,300), or a lone surrogate escape such as `"\\ud800"` (half a
    character: it cannot be written as UTF-8 nor tokenized)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:  # a ValueError too: let it through as it is
        raise
    except (RecursionError, ValueError) as exc:
        raise _limit_error(exc) from None
    if "\\u" in text:  # decoded bytes hold no surrogates: only a \u escape can make one
        _require_unicode(value)
    return value


def _limit_error(exc: Exception) -> JSONLimitError:
    if isinstance(exc, RecursionError):
        return JSONLimitError("JSON nested too deeply")
    # int() refuses longer digit strings (a guard against quadratic-time conversion).
    return JSONLimitError(f"a number has more than {sys.get_int_max_str_digits()} digits")


def _require_unicode(value: Any) -> None:
    """Raise JSONLimitError at the first lone surrogate in `value`'s strings (keys included);
    iterative, since `value` may be nested nearly as deep as the recursion limit."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                code = ord(found.group())
                raise JSONLimitError(f"lone surrogate \\u{code:04x} in a string (not Unicode)")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _jsonl_rows(path: Path, stats: LoadStats) -> Iterator[RawRow]:
    name = str(path)
    with open(path, "rb") as handle:
        for number, line, error in _decoded_lines(handle):
            if not line.strip():
                stats.blank_lines[name] = stats.blank_lines.get(name, 0) + 1
                continue
            if error:
                yield RawRow(name, number, error=error, raw=_clip(line))
                continue
            yield _parse_json_line(name, number, line)


def _parse_json_line(name: str, number: int, line: str) -> RawRow:
    try:
        value = parse_json(line)
    except json.JSONDecodeError as exc:
        return RawRow(
            name, number, error=f"invalid JSON: {exc.msg} at column {exc.colno}", raw=_clip(line)
        )
    except JSONLimitError as exc:
        return RawRow(name, number, error=f"unreadable JSON: {exc}", raw=_clip(line))
    if not isinstance(value, dict):
        return RawRow(
            name,
            number,
            error=f"expected a JSON object, got {type(value).__name__}",
            raw=_clip(line),
        )
    return RawRow(name, number, data=value)


def _clip(text: str, limit: int = 4000) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[:limit] + "…"


def _json_rows(path: Path) -> Iterator[RawRow]:
    """A JSON array of records (each with its true line), or an object: either {key: [records]}
    with one list inside, or {id: record}."""
    name = str(path)
    raw = path.read_bytes()
    encoding = detect_encoding(raw[:4])
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputFileError(
            f"{name}:{line}: undecodable bytes (not {encoding}) at byte {exc.start + 1}",
            hint="Re-save the file as UTF-8.",
        ) from None
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] == "[":
        yield from _scan_json_array(name, text, start + 1)
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except (RecursionError, ValueError) as exc:
        raise InputFileError(f"{name}: unreadable JSON: {_limit_error(exc)}") from None
    if not isinstance(value, dict):
        raise InputFileError(f"{name}: expected a JSON array or object of records")
    lists = [v for v in value.values() if isinstance(v, list)]
    _refuse_several_lists(name, value, len(lists))
    items = lists[0] if len(lists) == 1 and len(value) == 1 else list(value.values())
    escapes = "\\u" in text
    for number, item in enumerate(items, start=1):
        yield _json_record(name, number, item, escapes)


def _refuse_several_lists(name: str, value: dict[str, Any], lists: int) -> None:
    """An object of several lists and no records (`{"train": [...], "test": [...]}`) is a set of
    splits: read as {id: record} each list would be one rejected row, and which splits belong on
    this side is the user's call, so refuse and name them."""
    if lists < 2 or any(isinstance(v, dict) for v in value.values()):
        return
    keys = ", ".join(k for k, v in value.items() if isinstance(v, list))
    raise InputFileError(
        f"{name}: a JSON object holding {lists} lists ({keys}); which are the records is unclear",
        hint="Save each list as its own file (JSONL or a JSON array) and list it under "
        "data.train or data.eval.",
    )


def _json_record(name: str, line: int, item: Any, escapes: bool) -> RawRow:
    """One element of a JSON file's records: an object, or the reason it cannot be a row.
    `escapes`: whether its text holds a \\u escape, the only source of a lone surrogate."""
    if not isinstance(item, dict):
        return RawRow(name, line, error=f"expected a JSON object, got {type(item).__name__}")
    try:
        if escapes:
            _require_unicode(item)
    except JSONLimitError as exc:
        return RawRow(name, line, error=f"unreadable JSON: {exc}")
    return RawRow(name, line, data=item)


def _scan_json_array(name: str, text: str, pos: int) -> Iterator[RawRow]:
    """Decode array elements one at a time so each row knows its line; a syntax error stops
    the file with its exact position, since nothing after it can be trusted."""
    decoder = json.JSONDecoder()
    line, counted = 1, 0
    while True:
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == "]":
            return
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InputFileError(
                f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
                hint="A JSON array cannot be read past a syntax error; fix it or use JSONL, "
                "where one bad line only rejects that row.",
            ) from None
        except (RecursionError, ValueError) as exc:  # where the element ends is unknown
            raise InputFileError(
                f"{name}:{line}: unreadable JSON: {_limit_error(exc)}",
                hint="Fix that element, or use JSONL, where one bad line only rejects that row.",
            ) from None
        yield _json_record(name, line, value, "\\u" in text[pos:end])
        pos = _skip_space(text, end)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            line += text.count("\n", counted, pos)
            raise InputFileError(f"{name}:{line}: invalid JSON: expected ',' or ']'")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


# csv's default field limit is 131,072 characters: a longer document (normal in summarisation
# data) would be rejected, and the rest of its quoted field then read as rows of its own.
CSV_FIELD_LIMIT = 2**31 - 1  # the largest a C long holds on every platform


def _csv_rows(path: Path, delimiter: str, stats: LoadStats) -> Iterator[RawRow]:
    name = str(path)
    bad_lines: dict[int, str] = {}
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)  # process-wide: csv has no per-reader limit

    def lines(handle: BinaryIO) -> Iterator[str]:
        for number, line, error in _decoded_lines(handle):
            if error:
                bad_lines[number] = error
            yield line

    with open(path, "rb") as handle:
        reader = csv.reader(lines(handle), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputFileError(f"{name}:1: malformed CSV header: {exc}") from None
        width = len(header)
        start = reader.line_num + 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a bare carriage return inside an unquoted field
                yield RawRow(name, start, error=f"malformed CSV row: {exc}")
                start = reader.line_num + 1
                continue
            end = reader.line_num
            if not fields:  # a blank line: not a row, but counted like JSONL's
                stats.blank_lines[name] = stats.blank_lines.get(name, 0) + 1
                start = end + 1
                continue
            errors = [bad_lines[n] for n in range(start, end + 1) if n in bad_lines]
            if errors:
                yield RawRow(name, start, error=errors[0], raw=_clip(delimiter.join(fields)))
            elif len(fields) != width:
                yield RawRow(
                    name,
                    start,
                    error=f"row has {len(fields)} fields, header has {width}",
                    raw=_clip(delimiter.join(fields)),
                )
            else:
                yield RawRow(name, start, data=dict(zip(header, fields, strict=True)))
            start = end + 1


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    name = str(path)
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses
        raise InputFileError(f"{name}: not a readable Parquet file ({exc})") from None
    number = 0
    batches = parquet.iter_batches(batch_size=2048)
    while True:
        try:  # a damaged page shows only when it is read
            batch = next(batches, None)
        except Exception as exc:
            raise InputFileError(
                f"{name}: not a readable Parquet file after row {number} ({exc})"
            ) from None
        if batch is None:
            return
        for item, error in _batch_rows(batch):
            number += 1
            yield RawRow(name, number, data=None if item is None else _plain(item), error=error)


def _batch_rows(batch: Any) -> list[tuple[dict[str, Any] | None, str | None]]:
    """(row, None) for each row of a record batch, or (None, reason) for a row that cannot be
    converted, such as invalid UTF-8 in a string column of a damaged file."""
    try:
        return [(item, None) for item in batch.to_pylist()]
    except Exception:  # find the rows at fault, one by one
        pass
    rows: list[tuple[dict[str, Any] | None, str | None]] = []
    for index in range(batch.num_rows):
        try:
            rows.append((batch.slice(index, 1).to_pylist()[0], None))
        except Exception as exc:
            rows.append((None, f"unreadable row: {exc}"))
    return rows


def _plain(value: Any) -> Any:
    """A table cell as JSON can hold it: values JSON has no type for (bytes, dates, decimals)
    become the text `str()` gives, as the normalizer would have made of them anyway."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()


def _saved_dataset_rows(path: Path) -> Iterator[RawRow]:
    from datasets import Dataset, load_from_disk

    try:
        loaded = load_from_disk(str(path))
        splits = {"": loaded} if isinstance(loaded, Dataset) else dict(loaded)
        _refuse_several_splits(path, list(splits))
        for dataset in splits.values():
            # The Arrow files are memory-mapped and read unchecked: damaged offsets or text
            # would give garbage or crash the process, so check every buffer first.
            dataset.data.table.validate(full=True)
    except InputFileError:
        raise
    except Exception as exc:  # missing or damaged files raise whatever failed first
        raise InputFileError(
            f"{path}: not a readable save_to_disk dataset ({type(exc).__name__}: {exc})",
            hint="Save it again with Dataset.save_to_disk, or export it to JSONL or Parquet.",
        ) from None
    for split, dataset in splits.items():
        name = f"{path}[{split}]" if split else str(path)
        for number, item in enumerate(dataset, start=1):
            yield RawRow(name, number, data=_plain(dict(item)))


def _refuse_several_splits(path: Path, splits: list[str]) -> None:
    """A DatasetDict's splits (test included) would all land on the side it is listed under;
    each split is a saved Dataset of its own, so the user can list the ones meant."""
    if len(splits) < 2:
        return
    train = "train" if "train" in splits else splits[0]
    held_out = next(s for s in splits if s != train)
    raise InputFileError(
        f"{path}: a save_to_disk DatasetDict with {len(splits)} splits ({', '.join(splits)}); "
        "reading them all would put every split on one side",
        hint=f"List a split's folder instead, e.g. data.train: [{path / train}] and "
        f"data.eval: [{path / held_out}].",
    )


HUB_SPLIT = "train"  # the one split read from a hub dataset


def hub_source(name: str) -> str:
    """How a hub dataset's rows are named in locations and the report: with the split read, so
    nobody takes its other splits (test, validation) to have been read too."""
    return f"hub:{name}[{HUB_SPLIT}]"


def load_hub_dataset(name: str) -> Iterator[RawRow]:
    """Rows of a hub dataset's train split, streamed; a clear error when the hub is unreachable."""
    try:
        from datasets import load_dataset

        dataset = load_dataset(name, split=HUB_SPLIT, streaming=True)
        for number, item in enumerate(dataset, start=1):
            yield RawRow(hub_source(name), number, data=_plain(dict(item)))
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(
            f"could not load dataset '{name}' from the Hugging Face Hub: {type(exc).__name__}",
            hint="Without hub access, save the dataset to a file or folder and list its path.",
        ) from exc
