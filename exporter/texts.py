"""The texts parity is measured on: the built-in validation set, optional extra texts, and the stored copy.

The built-in set (``exporter/data/validation.jsonl``) holds hand-written texts chosen to stress an export:
single characters, many scripts, code and numbers, paraphrase pairs and long texts past the model's
maximum length. Users add their own domain texts from a ``.txt`` (one per line) or ``.jsonl`` (a ``text``
field per line) file. ``parity/texts.jsonl`` stores exactly the texts a reference was computed on, so a
host without the torch model can validate against ``parity/reference.npy`` row by row.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from exporter.errors import BadInputError

BUILTIN_RESOURCE = ("data", "validation.jsonl")


@dataclass(frozen=True)
class ValidationText:
    """One text and where it came from (``origin``: "builtin" or "extra")."""

    text: str
    origin: str = "builtin"
    kind: str | None = None
    domain: str | None = None
    lang: str | None = None


def builtin_texts() -> list[ValidationText]:
    """The built-in validation set shipped in the ``exporter`` package."""
    resource = resources.files("exporter").joinpath(*BUILTIN_RESOURCE)
    rows = parse_jsonl(resource.read_text(encoding="utf-8"), "exporter/" + "/".join(BUILTIN_RESOURCE))
    return [_from_row(row, "builtin") for row in rows]


# A text file for validation, bench or calibration larger than this is a mistake (or an attack), not a text set.
MAX_TEXT_FILE_BYTES = 64 * 1024 * 1024


def read_text_file(path: Path, where: str, what: str) -> str:
    """The content of a user's text file; ``BadInputError`` naming ``where`` when it is missing, too large
    (``MAX_TEXT_FILE_BYTES``) or unreadable. ``what`` says what the file is for, e.g. "validation texts"."""
    path = Path(path)
    prefix = where if where == str(path) else f"{where}: {path}"
    if not path.exists():
        raise BadInputError(f"{prefix}: file not found ({what})")
    if not path.is_file():
        raise BadInputError(f"{prefix}: not a file ({what})")
    size = path.stat().st_size
    if size > MAX_TEXT_FILE_BYTES:
        raise BadInputError(f"{prefix}: {size} bytes; {what} may be at most {MAX_TEXT_FILE_BYTES} bytes")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"{prefix}: cannot read it ({what}): {error}") from None


def read_extra_texts(path: Path) -> list[ValidationText]:
    """Texts from a user file: ``.txt`` one per line (blank lines skipped) or ``.jsonl`` with a "text" field.

    Raises ``BadInputError`` naming the file (and line) when it is missing, unreadable, empty or malformed.
    """
    path = Path(path)
    content = read_text_file(path, str(path), "validation texts")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        texts = [ValidationText(line, "extra") for line in content.splitlines() if line.strip()]
    elif suffix == ".jsonl":
        texts = [_from_row(row, "extra") for row in parse_jsonl(content, str(path))]
    else:
        raise BadInputError(f"{path}: validation texts must be a .txt (one per line) or .jsonl file")
    if not texts:
        raise BadInputError(f"{path}: no validation texts in the file")
    return texts


def write_texts(path: Path, texts: list[ValidationText]) -> None:
    """Store texts as JSON lines, in order (row i of the stored reference is text i)."""
    from exporter.artifact.integrity import write_text_atomic

    lines = (json.dumps({k: v for k, v in asdict(t).items() if v is not None}, ensure_ascii=False) for t in texts)
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def read_texts(path: Path) -> list[ValidationText]:
    """Read texts written by ``write_texts``. Raises ``BadInputError`` when malformed."""
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: cannot read stored validation texts: {error}") from None
    return [_from_row(row, row.get("origin", "builtin")) for row in parse_jsonl(content, str(path))]


def parse_jsonl(content: str, where: str, column: str = "text") -> list[dict]:
    """The rows of a JSON-lines text file; blank lines are skipped. Each row must be an object whose
    ``column`` is a string; otherwise ``BadInputError`` naming ``where`` and the line number."""
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{where}:{number}: malformed JSON line: {error.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get(column), str):
            raise BadInputError(f"{where}:{number}: expected an object with a string {column!r} field")
        rows.append(row)
    return rows


def _from_row(row: dict, origin: str) -> ValidationText:
    def optional(key: str) -> str | None:
        value = row.get(key)
        return str(value) if value is not None else None

    return ValidationText(row["text"], str(origin), optional("kind"), optional("domain"), optional("lang"))
