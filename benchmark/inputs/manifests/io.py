"""Reading manifests: safe YAML parsing, validation against the schema of a document's `kind`, and errors that
name the file, the line or field, and what was expected.

A manifest's digest is `json_digest()` of the parsed document (the YAML as data, not its bytes: comments and key
order do not count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from benchmark.core.errors import ManifestError
from benchmark.core.hashing import json_digest
from benchmark.core.registry import suggest, unknown_name_message
from benchmark.inputs.manifests.schema import KINDS, MANIFEST_CLASSES, AnyManifest
from benchmark.inputs.manifests.schema_common import SCHEMA_VERSION


@dataclass(frozen=True)
class LoadedManifest:
    manifest: AnyManifest
    digest: str
    path: Path
    document: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        return self.manifest.ref


def _describe_location(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def schema_error(path: str | Path, err: ValidationError, cls: type[BaseModel] | None = None) -> ManifestError:
    """Turn a pydantic error into a ManifestError that names the file, each field and what was expected."""
    lines = []
    for e in err.errors()[:8]:
        got = e.get("input")
        got_s = "" if isinstance(got, dict | list) else f" (got {got!r})"
        msg = e["msg"]
        if e["type"] == "extra_forbidden" and cls is not None and len(e["loc"]) == 1:
            hint = suggest(str(e["loc"][0]), list(cls.model_fields))
            msg = "unknown field" + (f" (did you mean {hint[0]}?)" if hint else "")
        lines.append(f"  - {_describe_location(e['loc'])}: {msg}{got_s}")
    more = f"\n  ... and {len(err.errors()) - 8} more" if len(err.errors()) > 8 else ""
    return ManifestError(f"{path}: does not match the manifest schema:\n" + "\n".join(lines) + more,
                         fix="correct the fields listed above; docs/manifests.md describes every field")


MAX_NODES = 200_000  # values in one document, aliases expanded: 60× the largest manifest; refused in ~0.1 s


class _ManifestLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden by design
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: SafeLoader's own check reports it
                continue
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def count_nodes(doc: Any, limit: int = MAX_NODES) -> int:
    """Values in `doc` with every alias expanded, counted up to `limit + 1` (so a billion laughs stops early)."""
    stack, n = [doc], 0
    while stack and n <= limit:
        obj = stack.pop()
        n += 1
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list):
            stack.extend(obj)
    return n


def parse_yaml(text: str, path: str | Path = "<string>") -> dict[str, Any]:
    """Safe YAML parsing with errors that name the file and line; the document must be a plain mapping, with no
    tags beyond YAML's own, no key given twice, and at most `MAX_NODES` values once aliases are expanded."""
    try:
        doc = yaml.load(text, Loader=_ManifestLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise _yaml_error(e, path) from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: expected a YAML mapping at the top level, got {type(doc).__name__}",
                            fix="a manifest is a mapping with schema_version, kind, name, version, ...")
    if count_nodes(doc) > MAX_NODES:
        raise ManifestError(f"{path}: more than {MAX_NODES} values once its aliases are expanded (an alias bomb?)",
                            fix="write the values out without nested aliases (`&name` / `*name`); no manifest "
                                "needs that many")
    return doc


def _yaml_error(e: yaml.YAMLError, path) -> ManifestError:
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if isinstance(e, yaml.constructor.ConstructorError) and "constructor for the tag" in problem:
        return ManifestError(f"{path}: refused tag{where}: {problem}",
                             fix="remove the tag: a manifest is plain data (mappings, lists, strings, numbers); "
                                 "tags such as !!python/... are never executed")
    if "duplicate key" in problem:
        return ManifestError(f"{path}: {problem}{where}", fix="keep one of the two entries (YAML would silently "
                                                               "use the last)")
    return ManifestError(f"{path}: malformed YAML{where}: {problem}",
                         fix="fix the YAML syntax (indentation, quoting, ':' after keys)")


def manifest_from_dict(doc: dict[str, Any], path: str | Path = "<dict>") -> AnyManifest:
    """Validate a parsed document against the schema of its `kind`."""
    kind = doc.get("kind")
    if kind not in MANIFEST_CLASSES:
        raise ManifestError(f"{path}: {unknown_name_message('manifest kind', str(kind), list(KINDS))}",
                            fix="set `kind` to one of: " + ", ".join(KINDS))
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(f"{path}: schema_version {doc.get('schema_version')!r} is not supported "
                            f"(this harness reads schema_version {SCHEMA_VERSION})",
                            fix=f"set `schema_version: {SCHEMA_VERSION}` or upgrade asyrp-bench")
    try:
        return MANIFEST_CLASSES[kind].model_validate(doc)  # type: ignore[return-value]
    except ValidationError as e:
        raise schema_error(path, e, MANIFEST_CLASSES[kind]) from None


def load_manifest(path: str | Path) -> LoadedManifest:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ManifestError(f"{path}: cannot be read ({e.strerror})", fix="check the path and permissions") from None
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: is not UTF-8 text (byte {e.start}: {e.reason})",
                            fix="save it as UTF-8, or move a file that is not a manifest out of the manifest tree"
                            ) from None
    doc = parse_yaml(text, path)
    return LoadedManifest(manifest_from_dict(doc, path), json_digest(doc), path, doc)
