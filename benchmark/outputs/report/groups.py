"""Groups of a run's images by a CelebA attribute (Male, Young, Pale_Skin, ...), from an attribute file.

Two files share one format (line 1: the row count; line 2: the 40 attribute names; then `<file> v1 ... v40`, each
value ±1):

- CelebA's `list_attr_celeba.txt`: rows keyed by the **original CelebA file** (`000001.jpg`, zero-padded);
- CelebAMask-HQ's `CelebAMask-HQ-attribute-anno.txt`: rows keyed by the **CelebA-HQ index** (`0.jpg` .. `29999.jpg`).

Which one it is follows from the row names. A run's image is matched by its dataset item's `celeba_file` or
`celebahq_index`; the items of rule-defined datasets (ids are CelebA file stems) need the CelebA-HQ-to-CelebA mapping
file only for a CelebA-HQ-keyed attribute file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from benchmark.core.errors import DataError, UnknownNameError
from benchmark.core.hashing import sha256_file
from benchmark.core.registry import unknown_name_message

KeyKind = Literal["celeba_file", "celebahq_index"]

_CELEBA_FILE = re.compile(r"^\d{6}\.(jpg|png)$")
_CELEBAHQ_FILE = re.compile(r"^(0|[1-9]\d{0,4})\.(jpg|png)$")
ATTRIBUTE_FILE_HELP = ("pass --attributes-file with CelebA's list_attr_celeba.txt or CelebAMask-HQ's "
                       "CelebAMask-HQ-attribute-anno.txt (line 1: row count, line 2: attribute names, then one row "
                       "of ±1 values per image)")


@dataclass(frozen=True)
class AttributeTable:
    """The parsed attribute file: `values[row]` holds ±1 per attribute, rows found by `row_of[key]`."""

    path: Path
    sha256: str
    names: tuple[str, ...]
    key_kind: KeyKind
    row_of: Mapping[str, int]  # the key: the CelebA file ("000001.jpg") or the CelebA-HQ index as text ("0")
    values: np.ndarray  # int8, rows × attributes

    def column(self, attribute: str) -> int:
        if attribute not in self.names:
            raise UnknownNameError(unknown_name_message("CelebA attribute", attribute, list(self.names)))
        return self.names.index(attribute)


def _malformed(path: Path, line: int, what: str) -> DataError:
    return DataError(f"{path}, line {line}: {what}", fix=ATTRIBUTE_FILE_HELP)


def read_attribute_table(path: str | Path) -> AttributeTable:
    """Parse and check an attribute file; every problem names its line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"attribute file {path} does not exist", fix=ATTRIBUTE_FILE_HELP)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"attribute file {path} cannot be read as text: {exc}", fix=ATTRIBUTE_FILE_HELP) from None
    if len(lines) < 2:
        raise _malformed(path, len(lines) + 1, "expected a row count, then the attribute names")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise _malformed(path, 1, f"expected the number of rows, got {lines[0][:40]!r}") from None
    names = tuple(lines[1].split())
    if not names or len(set(names)) != len(names):
        raise _malformed(path, 2, "expected distinct attribute names")
    rows = [(i + 3, line.split()) for i, line in enumerate(lines[2:]) if line.strip()]
    if len(rows) != count:
        raise _malformed(path, 1, f"the header says {count} rows but the file has {len(rows)}")
    key_kind = _key_kind(path, rows)
    values = np.empty((len(rows), len(names)), dtype=np.int8)
    row_of: dict[str, int] = {}
    for r, (line_no, fields) in enumerate(rows):
        if len(fields) != len(names) + 1:
            raise _malformed(path, line_no, f"expected a file name and {len(names)} values, got {len(fields)} fields")
        key = fields[0] if key_kind == "celeba_file" else fields[0].split(".")[0]
        if key in row_of:
            raise _malformed(path, line_no, f"{fields[0]} appears twice")
        if any(v not in ("1", "-1") for v in fields[1:]):
            raise _malformed(path, line_no, "attribute values must be 1 or -1")
        row_of[key] = r
        values[r] = np.array(fields[1:], dtype=np.int8)
    return AttributeTable(path=path, sha256=sha256_file(path), names=names, key_kind=key_kind, row_of=row_of,
                          values=values)


def _key_kind(path: Path, rows: list[tuple[int, list[str]]]) -> KeyKind:
    """The first row decides; the first row that does not follow it is the one reported."""
    patterns: dict[KeyKind, re.Pattern] = {"celeba_file": _CELEBA_FILE, "celebahq_index": _CELEBAHQ_FILE}
    first_line, first = rows[0] if rows else (3, [])
    kind = next((k for k, p in patterns.items() if first and p.match(first[0])), None)
    bad = first_line if kind is None else next((n for n, f in rows if not patterns[kind].match(f[0])), None)
    if bad is not None:
        raise _malformed(path, bad, "rows must all be named by a CelebA file (000001.jpg) or all by a CelebA-HQ "
                                    "index (0.jpg)")
    return kind


@dataclass(frozen=True)
class ImageRef:
    """What identifies one of a run's images in CelebA: its id, its CelebA file and its CelebA-HQ index."""

    id: str
    celeba_file: str | None = None
    celebahq_index: int | None = None


def read_mapping(path: str | Path) -> dict[str, int]:
    """CelebA-HQ-to-CelebA-mapping.txt (`idx orig_idx orig_file`, header row optional): CelebA file -> HQ index."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"mapping file {path} does not exist",
                        fix="pass --mapping-file with CelebA-HQ-to-CelebA-mapping.txt (from the CelebA-HQ release)")
    out: dict[str, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or (line_no == 1 and fields[0] == "idx"):
            continue
        if len(fields) != 3 or not fields[0].isdigit():
            raise DataError(f"{path}, line {line_no}: expected `idx orig_idx orig_file`",
                            fix="pass the CelebA-HQ-to-CelebA mapping file unchanged")
        out[fields[2]] = int(fields[0])
    return out


def image_refs(ids: Sequence[str], items: Mapping[str, Mapping] | None = None,
               mapping: Mapping[str, int] | None = None) -> list[ImageRef]:
    """The CelebA identity of each id: from its dataset item when the manifest lists it, else from the id itself
    (ids of CelebA-HQ datasets are CelebA file stems) and, for the CelebA-HQ index, the mapping file."""
    refs = []
    for image_id in ids:
        item = (items or {}).get(image_id, {})
        celeba_file = item.get("celeba_file") or (f"{image_id}.jpg" if re.fullmatch(r"\d{6}", image_id) else None)
        index = item.get("celebahq_index")
        if index is None and mapping is not None and celeba_file is not None:
            index = mapping.get(celeba_file)
            if index is None:
                raise DataError(f"image {image_id} ({celeba_file}) is not in the mapping file",
                                fix="pass the complete CelebA-HQ-to-CelebA-mapping.txt of the CelebA-HQ release")
        refs.append(ImageRef(image_id, celeba_file, None if index is None else int(index)))
    if refs and all(r.celeba_file is None and r.celebahq_index is None for r in refs):
        raise DataError(f"the run's images are not CelebA images (ids such as {refs[0].id!r}; neither a CelebA file "
                        "nor a CelebA-HQ index), so CelebA attributes cannot group them",
                        fix="run `bias` on a run of a CelebA-HQ suite (paper-table, official-checkpoints); a "
                            "mapping file cannot help here")
    return refs


def attribute_values(table: AttributeTable, refs: Sequence[ImageRef], attribute: str) -> np.ndarray:
    """±1 per image for `attribute`; every image without a row is listed in one error."""
    col = table.column(attribute)
    rows, missing = [], []
    for ref in refs:
        key = ref.celeba_file if table.key_kind == "celeba_file" else (
            None if ref.celebahq_index is None else str(ref.celebahq_index))
        if key is None or key not in table.row_of:
            missing.append(ref.id if key is None else f"{ref.id} ({key})")
            continue
        rows.append(table.row_of[key])
    if missing:
        needs_mapping = table.key_kind == "celebahq_index" and any(r.celebahq_index is None for r in refs)
        fix = ("pass --mapping-file CelebA-HQ-to-CelebA-mapping.txt (this attribute file is keyed by CelebA-HQ "
               "index)" if needs_mapping else "use the attribute file of the dataset the run used (" +
               ATTRIBUTE_FILE_HELP + ")")
        raise DataError(f"{len(missing)} image(s) have no row in {table.path.name}: {', '.join(missing[:10])}"
                        + (" ..." if len(missing) > 10 else ""), fix=fix)
    return table.values[rows, col]


def group_labels(table: AttributeTable, refs: Sequence[ImageRef], attribute: str) -> list[str]:
    """The group of each image: `attribute` (value +1) or `not attribute` (value −1)."""
    return [attribute if v > 0 else f"not {attribute}" for v in attribute_values(table, refs, attribute)]
