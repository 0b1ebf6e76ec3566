"""Generate the manifests of the authors' release listed in scripts/release_inventory.yaml.

- model manifests of the released f_t checkpoints (DeltaBlock on the DDPM U-Nets; the ResBlock-style f_t,
  `models.ft.ResDeltaBlock`, on the AFHQ-dog iDDPM and METFACES ADM U-Nets): the five fixture attributes and
  angry / young are written by scripts/make_fixture_manifests.py (`FT_ATTRIBUTES`); this script writes the rest
  it is asked for (default: every CelebA-HQ, LSUN, AFHQ-dog and METFACES one), by URL at the pinned commit. Their sha256 is not
  knowable offline: `sha256: null` until `lock` records it on first fetch, and the provenance says so;
- attribute manifests for those f_t (prompts from text_dic.py; t_edit cited, derived, or null = the authors'
  LPIPS rule at run time; t_boost per dataset; see `attribute_manifest`);
- the LSUN base models (SDEdit's church_outdoor.ckpt and bedroom.ckpt, loader `ddpm-checkpoint` with the
  authors' config) and the authors' LPIPS tables per dataset (loader `lpips-tables`, fetched like weights).
  The AFHQ-dog and METFACES base models (ILVR's afhq_dog_4m.pt, P2's metface_p2.pt) have no direct URL (the
  authors' README points to a OneDrive folder): their manifests (`source: {type: user}`), data manifests and
  suites are written by hand (manifests/models/afhq-dog-iddpm.yaml, metfaces-adm-p2.yaml), not by this script.

    python scripts/make_release_manifests.py [--datasets celeba_hq church bedroom dog metfaces] [--out manifests]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from _manifest_io import write_manifest
from make_fixture_manifests import ASYRP_COMMIT, FT_ATTRIBUTES, ft_manifest

from benchmark.core.hashing import sha256_file
from benchmark.core.paths import MANIFESTS_DIR, fixtures_dir

GENERATOR = "scripts/make_release_manifests.py"
INVENTORY = Path(__file__).resolve().parent / "release_inventory.yaml"
DEFAULT_DATASETS = ("celeba_hq", "church", "bedroom", "dog", "metfaces")
DATASET_TEXT = {  # how a description names each dataset and its base model
    "celeba_hq": ("CelebA-HQ", "the SDEdit CelebA-HQ DDPM"),
    "church": ("LSUN church_outdoor", "the SDEdit LSUN church DDPM (church_outdoor.ckpt)"),
    "bedroom": ("LSUN bedroom", "the SDEdit LSUN bedroom DDPM (bedroom.ckpt)"),
    "dog": ("AFHQ-dog", "ILVR's AFHQ-dog iDDPM (pretrained/afhq_dog_4m.pt)"),
    "metfaces": ("METFACES", "P2 weighting's METFACES ADM (pretrained/metface_p2.pt)"),
}
FT_CLASS_TEXT = {  # the inventory's `f_t` per dataset: how a description names the block
    "deltablock": "DeltaBlock",
    "resblock": "ResBlock-style DeltaBlock, models.ft.ResDeltaBlock: suite `ft: {name: resblock}`",
}
BASE_MODEL_DATASETS = ("church", "bedroom")  # sdedit-celebahq@1 has its own script; dog / metfaces: no source


def load_inventory(path: Path = INVENTORY) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if doc.get("commit") != ASYRP_COMMIT:
        raise SystemExit(f"{path}: commit {doc.get('commit')} is not the pinned {ASYRP_COMMIT}")
    return doc


def release_ft_manifest(entry: dict, inventory: dict, fixtures: Path) -> dict:
    """The model manifest of one released f_t checkpoint (an inventory `checkpoints` entry)."""
    dataset = entry["dataset"]
    ft_class = inventory["datasets"][dataset]["f_t"]
    if ft_class not in FT_CLASS_TEXT:
        raise SystemExit(f"{entry['file']}: no manifest format for f_t class {ft_class!r}")
    if dataset == "celeba_hq":
        doc = ft_manifest(entry["attribute"], fixtures)
        if doc["source"]["files"][0]["path"] != entry["file"]:
            raise SystemExit(f"{entry['file']}: the CelebA-HQ file name rule does not give this file")
    else:
        doc = _pinned_url_manifest(entry, ft_class)
    data_name, base = DATASET_TEXT[dataset]
    how = ("from random-noise x_T instead of inversions (--load_random_noise; inferred from the file name)"
           if entry.get("trained_from") == "random-noise" else "with 40 inversion and 40 generative steps")
    prompts = f"'{entry['source']}' -> '{entry['target']}'" + (", inferred" if entry.get("prompts_inferred") else "")
    doc["description"] = (f"The authors' released f_t ({FT_CLASS_TEXT[ft_class]}) for '{entry['attribute']}' on "
                          f"{data_name} ({prompts}): trained {how} for one epoch on {base}.")
    return doc


RESBLOCK_KEYS_NOTE = (". Keys (in_layers / emb_layers / out_layers under '0') inferred from the authors' "
                      "DeltaBlock class and save code (docs/unet-mapping.md), not yet checked against the file.")


def _pinned_url_manifest(entry: dict, ft_class: str) -> dict:
    file = entry["file"]
    return {
        "schema_version": 1, "kind": "model", "name": f"asyrp-ft-{entry['attribute'].replace('_', '-')}",
        "version": 1, "description": "",
        "license": "MIT (kwonminki/Asyrp_official)",
        "provenance": f"kwonminki/Asyrp_official@{ASYRP_COMMIT} checkpoint/{file}; sha256 not yet known (no "
                      "fixture copy): `lock` records it on first fetch. Prompts: utils/text_dic.py "
                      "(scripts/release_inventory.yaml)" + (RESBLOCK_KEYS_NOTE if ft_class == "resblock" else ""),
        "loader": "asyrp-deltablock",
        "loader_args": {"attribute": entry["attribute"], "state_dict_key": "0"},
        "source": {"type": "url", "files": [{
            "path": file, "sha256": None, "size": None,
            "url": f"https://raw.githubusercontent.com/kwonminki/Asyrp_official/{ASYRP_COMMIT}/checkpoint/{file}"}]},
    }


def selected(inventory: dict, datasets) -> list[dict]:
    return [e for e in inventory["checkpoints"]
            if e["dataset"] in datasets and e["attribute"] not in FT_ATTRIBUTES]


ATTRIBUTE_NAMES = {a: a for a in FT_ATTRIBUTES}  # the hand-written attribute manifests keep their names


def attribute_name(entry: dict) -> str:
    return ATTRIBUTE_NAMES.get(entry["attribute"], entry["attribute"].replace("_", "-"))


def attribute_t_edit(entry: dict) -> tuple[int | None, str]:
    """(t_edit, why): cited; derived (the rule gives the same t_edit for the same prompts); or None (the rule at
    run time, which needs the text cosine of CLIP ViT-B/16, not available offline)."""
    t = entry["t_edit"]
    if t.get("cited") is not None:
        lo, hi = t["implied_cos"]
        return t["cited"], (f"t_edit {t['cited']}: the reproduction study's Table 1 (asyrp-reference.md section 5), "
                            f"which the authors' LPIPS rule gives for a text cosine of {lo}-{hi}")
    derived = {k: v for k, v in t.items() if k.startswith("by_rule_if_prompts_are_")}
    if derived:
        (key, value), = derived.items()
        other = key.removeprefix("by_rule_if_prompts_are_")
        return value, (f"t_edit {value}: the authors' LPIPS rule depends on the prompts only, and these are the "
                       f"prompts of '{other}' (inferred from the file name), whose cited t_edit is {value}")
    return None, ("t_edit: none cited anywhere; null = picked at run time by the authors' rule (min t with "
                  "LPIPS(x, P_t) >= 0.33 cos(E_T(src), E_T(trg)), raw prompts, CLIP ViT-B/16) on the dataset's "
                  "LPIPS table (the suite's `t_select`)")


def attribute_manifest(entry: dict, inventory: dict) -> dict:
    """The attribute manifest of one released f_t (an inventory `checkpoints` entry)."""
    data_name = DATASET_TEXT[entry["dataset"]][0]
    t_edit, why = attribute_t_edit(entry)
    ds = inventory["datasets"][entry["dataset"]]
    lam = entry.get("lambda_clip") or {}
    lambda_clip = lam.get("uva") or lam.get("authors_scripts") or 1.0
    lam_why = ("lambda_clip: the reproduction study's Table 1" if lam.get("uva") else
               "lambda_clip 1.0 and lambda_recon 3: the authors' training command (--clip_loss_w 1.0 --l1_loss_w 3.0; "
               "asyrp-reference.md section 6)")
    domain = entry.get("domain") or "unstated"
    prompts = ("inferred from the file name, not stated anywhere" + (f" ({entry['note']})" if entry.get("note") else "")
               if entry.get("prompts_inferred") else "kwonminki/Asyrp_official@a6c82dc utils/text_dic.py (SRC_TRG_TXT_DIC)")
    trained = " (trained from random noise)" if entry.get("trained_from") == "random-noise" else ""
    return {
        "schema_version": 1, "kind": "attribute", "name": attribute_name(entry), "version": 1,
        "description": f"Edit {data_name} images from '{entry['source']}' to '{entry['target']}' with the authors' "
                       f"released f_t ({entry['attribute']}){trained}.",
        "source_prompt": entry["source"], "target_prompt": entry["target"], "domain": domain,
        "t_edit": t_edit, "t_boost": ds["t_boost"]["value"], "lambda_clip": float(lambda_clip),
        "lambda_recon": 3.0, "lambda_recon_times_text_cosine": True,
        "provenance": (f"Prompts: {prompts}. {why}. t_boost {ds['t_boost']['value']} = min t with LPIPS(x, x_t) >= "
                       f"1.2 in the {data_name} table. {lam_why}; the loss weights matter only when this attribute "
                       "is trained. Domain: " + ("the reproduction study's Table 1" if entry.get("domain") else
                                                  "not stated by the authors (unstated)")
                       + ". Generated from scripts/release_inventory.yaml."),
    }


def base_model_manifest(dataset: str, inventory: dict) -> dict:
    """The SDEdit DDPM of an LSUN dataset, by URL, with the authors' config."""
    base = inventory["datasets"][dataset]["base_model"]
    cfg = base["config"]
    file = base["url"].rsplit("/", 1)[1]
    name = {"church": "sdedit-church-outdoor", "bedroom": "sdedit-bedroom"}[dataset]
    return {
        "schema_version": 1, "kind": "model", "name": name, "version": 1,
        "description": (f"The SDEdit {DATASET_TEXT[dataset][0]} DDPM checkpoint ({file}) that Asyrp's official code "
                        f"edits ({cfg['file']}: DDPM, ch {cfg['ch']}, ch_mult {','.join(map(str, cfg['ch_mult']))}, "
                        f"linear betas {cfg['beta_start']}..{cfg['beta_end']}, T={cfg['num_diffusion_timesteps']}). "
                        "The loader converts it to a diffusers UNet2DModel."),
        "license": "unknown (SDEdit, ermongroup); weights of Ho et al.'s DDPM",
        "provenance": (f"URL from kwonminki/Asyrp_official diffusion_latent.py (load_pretrained_model); config from "
                       f"gwang-kim/DiffusionCLIP@7573b88 {cfg['file']} (the Asyrp copy is not in the index); "
                       "scripts/release_inventory.yaml. No published digest: `lock` records the sha256 on first "
                       "fetch."),
        "loader": "ddpm-checkpoint",
        "loader_args": {"config": cfg["file"].rsplit("/", 1)[1]},
        "source": {"type": "url", "files": [{"path": file, "url": base["url"], "sha256": base["sha256"]}]},
    }


def lpips_tables_manifest(dataset: str, inventory: dict, fixtures: Path) -> dict:
    """The authors' four LPIPS tables of a dataset at the pinned commit (what t_edit / t_boost come from)."""
    tables = inventory["datasets"][dataset]["lpips_tables"]
    prefix = tables["x"]["path"].rsplit("/", 1)[1].split("_LPIPS_")[0]
    files = []
    for suffix in ("x", "x0_t", "x_std", "x0_t_std"):
        path = f"{prefix}_LPIPS_distance_{suffix}.tsv"
        copy = fixtures / "asyrp_official" / "tables" / path
        sha = sha256_file(copy) if copy.is_file() else None
        files.append({"path": path, "url": f"{inventory['raw_url']}/utils/{path}", "sha256": sha,
                      "size": copy.stat().st_size if copy.is_file() else None})
    known = all(f["sha256"] for f in files)
    return {
        "schema_version": 1, "kind": "model", "name": f"asyrp-lpips-{dataset.replace('_', '-')}", "version": 1,
        "description": (f"The authors' LPIPS tables of {DATASET_TEXT[dataset][0]} (utils/{prefix}_LPIPS_distance_"
                        "{x,x0_t}{,_std}.tsv): mean and std over images of LPIPS(x, x_t) and LPIPS(x, P_t) per t, "
                        "which their rule picks t_boost and t_edit from."),
        "license": "MIT (kwonminki/Asyrp_official)",
        "provenance": (f"kwonminki/Asyrp_official@{ASYRP_COMMIT} utils/; "
                       + ("sha256 and size of the fixture copies (../shared/fixtures/asyrp_official/tables)" if known
                          else "sha256 not yet known (no fixture copy): `lock` records it on first fetch")),
        "loader": "lpips-tables",
        "loader_args": {"prefix": prefix},
        "source": {"type": "url", "files": files},
    }


LSUN_CATEGORY = {"church": "church_outdoor", "bedroom": "bedroom"}


def lsun_dataset_manifest(dataset: str, count: int = 100) -> dict:
    """The first `count` images of an LSUN category's validation LMDB, as the authors' test loader reads them.

    Membership by rule only (no source lists the keys): applied to the user's LMDB on first use and recorded in
    the lock file, as for the unpinned CelebA-HQ manifests (docs/data.md)."""
    category = LSUN_CATEGORY[dataset]
    return {
        "schema_version": 1, "kind": "dataset", "name": f"lsun-{category.replace('_', '-')}-val-first{count}",
        "version": 1,
        "description": (f"The first {count} images of LSUN {category}_val in LMDB key order, center-cropped to "
                        "256x256 (the test images of the authors' LSUN edits)."),
        "license": "LSUN: see https://www.yf.io/p/lsun (images from the web; research use). Not redistributed.",
        "provenance": (f"The authors' test loader reads LSUN {category}_val_lmdb with shuffle=False (kwonminki/"
                       "Asyrp_official datasets/data_utils.py get_dataloader); its LSUN dataset class is stored "
                       "only as .pyc, so DiffusionCLIP's (gwang-kim/DiffusionCLIP@7573b88 datasets/LSUN_dataset.py,"
                       " which Asyrp's README credits for the data code) is assumed: keys from txn.cursor() in "
                       "order, Resize(256) + CenterCrop(256). The LMDB holds webp bytes whose shorter side is 256 "
                       f"(fyu/lsun README). The first {count}, as for CelebA-HQ (n_test_img 100), is this suite's "
                       "choice: no LSUN test count is recorded."),
        "image_size": 256, "count": count,
        "preprocessing": {"name": "diffusionclip-lsun", "resize": "shorter-side-center-crop"},
        "distributions": {"lsun-lmdb": {
            "layout": "lmdb", "template": "{lsun_key}", "image_size": 256, "size": "shorter-side", "format": "webp",
            "description": f"LSUN {category}_val_lmdb as downloaded (fyu/lsun download.py; the folder holds data.mdb)"}},
        "selection": {"rule": f"the first {count} keys of {category}_val_lmdb in key order (= cursor order)",
                      "distribution": "lsun-lmdb", "listing": ".", "pattern": "*", "name_field": "lsun_key"},
        "items": [],
    }


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
        doc = attribute_manifest(entry, inventory)
        write_manifest(args.out / "attributes" / f"{doc['name']}.yaml", doc, GENERATOR)
    for dataset in args.datasets:
        if dataset in BASE_MODEL_DATASETS:
            doc = base_model_manifest(dataset, inventory)
            write_manifest(args.out / "models" / f"{doc['name']}.yaml", doc, GENERATOR)
            doc = lsun_dataset_manifest(dataset)
            write_manifest(args.out / "datasets" / f"{doc['name']}.yaml", doc, GENERATOR)
        doc = lpips_tables_manifest(dataset, inventory, args.fixtures)
        write_manifest(args.out / "models" / f"{doc['name']}.yaml", doc, GENERATOR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
