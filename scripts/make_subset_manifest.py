"""Write a dataset manifest that is the first N items of another (same files, same digests), e.g. the quick
profile's test split:

    python scripts/make_subset_manifest.py synthetic-test-first100 16    # -> manifests/datasets/synthetic-test-first16.yaml
"""

from __future__ import annotations

import argparse
import sys

from _manifest_io import write_manifest

from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.manifests import ManifestRegistry


def subset(source: dict, n: int) -> dict:
    if not 1 <= n < len(source["items"]):
        raise SystemExit(f"N must be between 1 and {len(source['items']) - 1}, got {n}")
    base = source["name"].rsplit("-first", 1)[0]
    return {**source, "name": f"{base}-first{n}", "version": 1, "count": n, "items": source["items"][:n],
            "description": f"The first {n} items of {source['name']}@{source['version']} (same files and digests).",
            "provenance": f"scripts/make_subset_manifest.py {source['name']} {n}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="the source dataset manifest (name[@version])")
    parser.add_argument("n", type=int, help="how many of its first items")
    args = parser.parse_args(argv)
    source = ManifestRegistry().get("dataset", args.dataset).document
    doc = subset(source, args.n)
    write_manifest(MANIFESTS_DIR / "datasets" / f"{doc['name']}.yaml", doc, f"scripts/make_subset_manifest.py "
                   f"{args.dataset} {args.n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
