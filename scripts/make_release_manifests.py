"""Generate model manifests for the authors' released f_t checkpoints listed in scripts/release_inventory.yaml.

The five fixture attributes and angry / young are written by scripts/make_fixture_manifests.py (`FT_ATTRIBUTES`);
this script writes the rest of the DeltaBlock checkpoints it is asked for (default: every CelebA-HQ, LSUN church
and LSUN bedroom one), in the same format, by URL at the pinned commit. Their sha256 is not knowable offline:
`sha256: null` until `lock` records it on first fetch, and the provenance says so.

    python scripts/make_release_manifests.py [--datasets celeba_hq church bedroom] [--out manifests]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from _manifest_io import write_manifest
from make_fixture_manifests import ASYRP_COMMIT, FT_ATTRIBUTES, ft_manifest

from benchmark.core.paths import MANIFESTS_DIR, fixtures_dir

GENERATOR = "scripts/make_release_manifests.py"
INVENTORY = Path(__file__).resolve().parent / "release_inventory.yaml"
DEFAULT_DATASETS = ("celeba_hq", "church", "bedroom")
DATASET_TEXT = {  # how a description names each dataset and its base model
    "celeba_hq": ("CelebA-HQ", "the SDEdit CelebA-HQ DDPM"),
    "church": ("LSUN church_outdoor", "the SDEdit LSUN church DDPM (church_outdoor.ckpt)"),
    "bedroom": ("LSUN bedroom", "the SDEdit LSUN bedroom DDPM (bedroom.ckpt)"),
}


def load_inventory(path: Path = INVENTORY) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if doc.get("commit") != ASYRP_COMMIT:
        raise SystemExit(f"{path}: commit {doc.get('commit')} is not the pinned {ASYRP_COMMIT}")
    return doc


def release_ft_manifest(entry: dict, inventory: dict, fixtures: Path) -> dict:
    """The model manifest of one released DeltaBlock checkpoint (an inventory `checkpoints` entry)."""
    dataset = entry["dataset"]
    if inventory["datasets"][dataset]["f_t"] != "deltablock":
        raise SystemExit(f"{entry['file']}: only DeltaBlock checkpoints have a manifest format yet")
    if dataset == "celeba_hq":
        doc = ft_manifest(entry["attribute"], fixtures)
        if doc["source"]["files"][0]["path"] != entry["file"]:
            raise SystemExit(f"{entry['file']}: the CelebA-HQ file name rule does not give this file")
    else:
        doc = _lsun_manifest(entry)
    data_name, base = DATASET_TEXT[dataset]
    how = ("from random-noise x_T instead of inversions (--load_random_noise; inferred from the file name)"
           if entry.get("trained_from") == "random-noise" else "with 40 inversion and 40 generative steps")
    prompts = f"'{entry['source']}' -> '{entry['target']}'" + (", inferred" if entry.get("prompts_inferred") else "")
    doc["description"] = (f"The authors' released f_t (DeltaBlock) for '{entry['attribute']}' on {data_name} "
                          f"({prompts}): trained {how} for one epoch on {base}.")
    return doc


def _lsun_manifest(entry: dict) -> dict:
    file = entry["file"]
    return {
        "schema_version": 1, "kind": "model", "name": f"asyrp-ft-{entry['attribute'].replace('_', '-')}",
        "version": 1, "description": "",
        "license": "MIT (kwonminki/Asyrp_official)",
        "provenance": f"kwonminki/Asyrp_official@{ASYRP_COMMIT} checkpoint/{file}; sha256 not yet known (no "
                      "fixture copy): `lock` records it on first fetch. Prompts: utils/text_dic.py "
                      "(scripts/release_inventory.yaml)",
        "loader": "asyrp-deltablock",
        "loader_args": {"attribute": entry["attribute"], "state_dict_key": "0"},
        "source": {"type": "url", "files": [{
            "path": file, "sha256": None, "size": None,
            "url": f"https://raw.githubusercontent.com/kwonminki/Asyrp_official/{ASYRP_COMMIT}/checkpoint/{file}"}]},
    }


def selected(inventory: dict, datasets) -> list[dict]:
    return [e for e in inventory["checkpoints"]
            if e["dataset"] in datasets and e["attribute"] not in FT_ATTRIBUTES]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS), choices=list(DATASET_TEXT))
    ap.add_argument("--fixtures", type=Path, default=fixtures_dir())
    ap.add_argument("--out", type=Path, default=MANIFESTS_DIR)
    args = ap.parse_args(argv)
    inventory = load_inventory()
    for entry in selected(inventory, args.datasets):
        doc = release_ft_manifest(entry, inventory, args.fixtures)
        write_manifest(args.out / "models" / f"{doc['name']}.yaml", doc, GENERATOR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
