"""Where a dataset's bytes come from: a folder, a zip or DiffusionCLIP's LMDB, each behind one `Reader`.

Keys are relative paths (or LMDB keys), looked up exactly: folder paths go through `safe_join`, zip members are
matched by name (optionally under the zip's single top-level folder). A source that cannot be read says what it
looks like instead (a truncated zip says so) and how to get an intact copy.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from benchmark.core.errors import DataError
from benchmark.core.paths import safe_join


class Reader:
    """Bytes by relative key from one source; `describe(key)` says where that is, for messages."""

    root: Path

    def read(self, key: str) -> bytes | None:  # None = not there
        raise NotImplementedError

    def listing(self, folder: str) -> list[str]:
        raise NotImplementedError

    def describe(self, key: str) -> str:
        return f"{self.root}/{key}"

    def close(self) -> None:
        pass


class FolderReader(Reader):
    def __init__(self, root: Path):
        self.root = root

    def read(self, key: str) -> bytes | None:
        path = safe_join(self.root, key)
        return path.read_bytes() if path.is_file() else None

    def listing(self, folder: str) -> list[str]:
        path = safe_join(self.root, folder)
        return sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() else []


class ZipReader(Reader):
    """Members are looked up by exact name, optionally under the zip's single top-level folder."""

    def __init__(self, root: Path):
        self.root = root
        try:
            self._zip = zipfile.ZipFile(root)
        except zipfile.BadZipFile:
            raise DataError(f"{root} is not a readable zip file (truncated download?)",
                            fix="download the archive again, or point at the unpacked folder") from None
        names = self._zip.namelist()
        tops = {n.split("/", 1)[0] for n in names if "/" in n}
        self._prefix = f"{tops.pop()}/" if len(tops) == 1 and not any("/" not in n for n in names) else ""
        self._names = set(names)

    def _member(self, key: str) -> str | None:
        for name in (key, self._prefix + key):
            if name in self._names:
                return name
        return None

    def read(self, key: str) -> bytes | None:
        member = self._member(key)
        if member is None:
            return None
        try:
            return self._zip.read(member)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{self.describe(key)}: cannot be read from the zip ({e})",
                            fix="download the archive again") from None

    def listing(self, folder: str) -> list[str]:
        out = set()
        for prefix in (f"{folder}/", f"{self._prefix}{folder}/"):
            out |= {n[len(prefix):] for n in self._names if n.startswith(prefix) and "/" not in n[len(prefix):]}
        return sorted(n for n in out if n)

    def describe(self, key: str) -> str:
        return f"{self.root}:{self._member(key) or key}"

    def close(self) -> None:
        self._zip.close()


class LmdbReader(Reader):
    def __init__(self, root: Path):
        import lmdb

        self.root = root
        try:
            self._env = lmdb.open(str(root), readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as e:
            raise DataError(f"{root} is not a readable LMDB ({e})",
                            fix="point at DiffusionCLIP's data/celeba_hq/LMDB_test folder (it holds data.mdb)") from None

    def read(self, key: str) -> bytes | None:
        with self._env.begin(write=False) as txn:
            value = txn.get(key.encode("utf-8"))
        return bytes(value) if value is not None else None

    def listing(self, folder: str) -> list[str]:
        """The keys, sorted (an LMDB cursor's own order is the keys' byte order; for ASCII keys, the same)."""
        if folder != ".":
            raise DataError(f"{self.root}: an LMDB has no folders to list (asked for {folder!r})",
                            fix="apply the selection rule to the raw images (folder or zip) instead")
        with self._env.begin(write=False) as txn:
            return sorted(bytes(k).decode("utf-8", "replace") for k, _ in txn.cursor())

    def describe(self, key: str) -> str:
        return f"{self.root}[{key}]"

    def close(self) -> None:
        self._env.close()


def open_source(root: str | Path, layout: str) -> Reader:
    """A reader for `root`, which must match the distribution's layout."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data not found: {root} does not exist",
                        fix="pass the folder (or zip, or LMDB folder) that holds the dataset; docs/data.md says "
                            "where each distribution comes from")
    if layout == "lmdb":
        if not (root / "data.mdb").is_file():
            raise DataError(f"{root} is not an LMDB folder (no data.mdb)",
                            fix="point at DiffusionCLIP's data/celeba_hq/LMDB_<split> folder")
        return LmdbReader(root)
    if root.is_file():
        if zipfile.is_zipfile(root):
            return ZipReader(root)
        if _starts_like_a_zip(root) or root.suffix.lower() == ".zip":  # its directory at the end is missing
            raise DataError(f"{root} is not a readable zip file: it starts like one, but its central directory "
                            "(at the end) is missing or damaged (truncated download?)",
                            fix="download the archive again (compare its size with the published one), or point "
                                "at the unpacked folder")
        raise DataError(f"{root} is a file but not a zip archive", fix="pass a folder, a .zip or an LMDB folder")
    return FolderReader(root)


def _starts_like_a_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"
