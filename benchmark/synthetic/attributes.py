"""The synthetic attributes and their t_edit / t_boost.

The authors' rule (models.t_select): t_edit = min t with LPIPS(x, P_t) >= 0.33 · cos(E_T(src), E_T(trg)),
t_boost = min t with LPIPS(x, x_t) >= 1.2.

**Used:** the rule with the authors' own CelebA-HQ LPIPS tables (`celeba_LPIPS_distance_{x0_t,x}.tsv`,
kwonminki/Asyrp_official utils/, read from the shared fixtures) and the *synthetic* CLIP's text cosine. The
synthetic DDPM has the same linear schedule, so a given t is the same noise level; the tables' image statistics
are CelebA's, not this world's (a caveat written into each manifest).

**Tried and rejected:** the rule on curves of this DDPM, with an unlearned LPIPS-style distance on the oracle's
trunk (LPIPS' AlexNet weights are not available offline) scaled to LPIPS at t = 999. Its P_t distance saturates far
earlier than LPIPS on CelebA, so every attribute got t_edit = 102 (= t_boost), and a quick run (8 training images,
4 test images) destroyed the faces. Those curves and choices are still computed and written to
`results/synthetic-world/t_select.json` as evidence.

    python -m benchmark.synthetic.attributes [--clip synthetic-clip@N] [--version N]

recomputes them and writes `manifests/attributes/synthetic-*.yaml`. The text cosine is the CLIP's, so a new CLIP
means new attribute versions: `--version N` moves the current ones to `synthetic-NAME-vK.yaml` and writes version N.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from benchmark.synthetic.captions import NEUTRAL_PROMPT, PROMPTS

AUTHORS_LPIPS_999 = {"x0t": 1.1445063795193586, "x": 1.3882732308737122}  # celeba_LPIPS_distance_*.tsv, t = 999
CURVE_IMAGES = 16
CURVE_STEPS = 40

# name -> (target prompt, domain, oracle factor, direction, description)
ATTRIBUTES = {
    "smiling": (PROMPTS["smiling"], "in-domain", "mouth_curvature", "increase", "Make the face smile."),
    "sad": (PROMPTS["sad"], "in-domain", "mouth_curvature", "decrease", "Make the face sad (mouth corners down)."),
    "tanned": (PROMPTS["tanned"], "in-domain", "tan", "increase", "Darken (tan) the skin."),
    "zombie": (PROMPTS["zombie"], "unseen", "green", "increase",
               "Turn the skin green: a colour the DDPM never saw (its training renders exclude green skin) but the "
               "CLIP did (its captions name 'green zombie' faces)."),
}


def oracle_distance(oracle):
    """An unlearned LPIPS-style distance on the oracle's trunk: pixels in [-1, 1] -> one value per image."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(a.shape[0])
        fa, fb = a, b
        for block in oracle.trunk:
            fa, fb = block(fa), block(fb)
            na, nb = F.normalize(fa, dim=1), F.normalize(fb, dim=1)
            total += ((na - nb) ** 2).sum(1).mean((1, 2)).cpu()
        return total

    return distance


def choose_times(model, oracle, clip_model, tokenizer, images) -> dict:
    """Curves on `images` (uint8) and the chosen t_edit per attribute and t_boost, with the calibration."""
    from benchmark.core.images import from_uint8
    from models.t_select import compute_lpips_curves, select_t_boost, select_t_edit

    curves = compute_lpips_curves(model, from_uint8(images), n_steps=CURVE_STEPS, distance=oracle_distance(oracle))
    scale_x0t = AUTHORS_LPIPS_999["x0t"] / curves.x0t[max(curves.x0t)]
    scale_x = AUTHORS_LPIPS_999["x"] / curves.x[max(curves.x)]
    x0t = {t: v * scale_x0t for t, v in curves.x0t.items()}
    x = {t: v * scale_x for t, v in curves.x.items()}
    out = {"t_boost": select_t_boost(x), "attributes": {}, "curves": {"x0t": x0t, "x": x},
           "calibration": {"x0t": scale_x0t, "x": scale_x}}
    with torch.no_grad():
        for name, (target, *_rest) in ATTRIBUTES.items():
            t = F.normalize(clip_model.encode_text(tokenizer([NEUTRAL_PROMPT, target])).float(), dim=-1)
            cos = float(t[0] @ t[1])
            out["attributes"][name] = {"text_cosine": cos, "t_edit": select_t_edit(x0t, cos)}
    return out


def authors_rule(cosines: dict[str, float], tables) -> dict:
    """t_edit per attribute and t_boost from the authors' CelebA-HQ LPIPS tables."""
    from models.t_select import select_t_boost, select_t_edit

    x0t = tables / "celeba_LPIPS_distance_x0_t.tsv"
    return {"t_boost": select_t_boost(tables / "celeba_LPIPS_distance_x.tsv"),
            "t_edit": {name: select_t_edit(x0t, cos) for name, cos in cosines.items()}}


def t_select_name(version: int) -> str:
    """The evidence file of an attribute version's t_edit choice (curves, cosines, the rejected substitute)."""
    return "t_select.json" if version == 1 else f"t_select-v{version}.json"


def attribute_doc(name: str, t_edit: int, t_boost: int, cos: float, *, version: int = 1,
                  clip: str = "synthetic-clip@1") -> dict:
    target, domain, factor, direction, description = ATTRIBUTES[name]
    # version 1's words are kept as they were released; later versions name their CLIP and their evidence file
    whose = "the synthetic CLIP's" if version == 1 else f"{clip}'s"
    rejected = ("a substitute distance gave t_edit = 102 and destroyed the faces" if version == 1 else
                f"a substitute distance was rejected, results/synthetic-world/{t_select_name(version)}")
    return {
        "schema_version": 1, "kind": "attribute", "name": f"synthetic-{name}", "version": version,
        "description": f"{description} (synthetic world; the oracle measures it as `{factor}`, {direction}).",
        "source_prompt": NEUTRAL_PROMPT, "target_prompt": target, "domain": domain,
        "t_edit": t_edit, "t_boost": min(t_boost, t_edit), "lambda_clip": 0.8, "lambda_recon": 3.0,
        "lambda_recon_times_text_cosine": True,
        "provenance": (f"Prompts from the caption vocabulary (benchmark/synthetic/captions.py). t_edit and t_boost by "
                       "the authors' rule (min t with LPIPS(x, P_t) >= 0.33 cos; min t with LPIPS(x, x_t) >= 1.2) "
                       "on the authors' CelebA-HQ tables (kwonminki/Asyrp_official@a6c82dc "
                       "utils/celeba_LPIPS_distance_{x0_t,x}.tsv) with "
                       f"{whose} text cosine "
                       f"cos(E_T('face'), E_T('{target}')) = {cos:.4f}: same linear schedule as synthetic-ddpm@1, "
                       "but CelebA's image statistics (LPIPS-AlexNet is not available offline to make this world's "
                       f"own curves; {rejected}, see "
                       "benchmark/synthetic/attributes.py, which wrote this file). lambda_clip 0.8 and lambda_recon 3 "
                       "as the paper's in-domain CelebA settings."),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    import yaml

    from benchmark.core.atomic import write_json, write_text
    from benchmark.core.paths import REPO_ROOT, RESULTS_DIR, fixtures_dir, manifests_dir
    from benchmark.inputs.data import load_dataset
    from benchmark.inputs.manifests import load_manifest, manifest_from_dict
    from benchmark.synthetic.publish import make_room_for_version
    from benchmark.synthetic.weights import load_clip, load_ddpm, load_oracle, manifest_file, shipped_file

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="synthetic-clip@1",
                   help="the CLIP whose text cosines set t_edit (default %(default)s)")
    p.add_argument("--version", type=int, default=1, help="the attribute version to write (default %(default)s)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_ddpm(*shipped_file("synthetic-ddpm"))
    oracle = load_oracle(*shipped_file("synthetic-oracle"))
    clip_model, tokenizer = load_clip(*manifest_file(args.clip))
    manifest = load_manifest(manifests_dir() / "datasets" / "synthetic-test-first100.yaml").manifest
    images = load_dataset(manifest, REPO_ROOT, limit=CURVE_IMAGES, record=False).images
    rejected = choose_times(model, oracle, clip_model, tokenizer, images)
    cosines = {name: info["text_cosine"] for name, info in rejected["attributes"].items()}
    used = authors_rule(cosines, fixtures_dir() / "asyrp_official" / "tables")
    chosen = {"used": {"rule": f"authors' LPIPS tables (CelebA-HQ) with {args.clip}'s text cosine",
                       "text_cosine": cosines, **used},
              "rejected_substitute_distance": rejected}
    for name, cos in cosines.items():
        doc = attribute_doc(name, used["t_edit"][name], used["t_boost"], cos, version=args.version, clip=args.clip)
        path = manifests_dir() / "attributes" / f"synthetic-{name}.yaml"
        manifest_from_dict(doc, path)
        make_room_for_version(path, args.version)
        write_text(path, "# Written by `python -m benchmark.synthetic.attributes`; do not edit by hand.\n"
                   + yaml.safe_dump(doc, sort_keys=False, width=110))
    write_json(RESULTS_DIR / "synthetic-world" / t_select_name(args.version), chosen)
    print(chosen["used"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
