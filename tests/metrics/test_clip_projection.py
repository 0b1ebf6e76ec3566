"""The real world's factor measure (metrics.clip_projection): a hand computation, S_dir's identity on a real CLIP
back-end, the suite manifest's rule for its targets, and the measure the harness builds for `paper-table`."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.core.errors import DataError
from metrics.clip_projection import ClipProjectionFactors
from metrics.functional import direction_projection


class TableEmbedder:
    """Fixed embeddings: texts from a table, images from their first pixel's (R, G) values."""

    def __init__(self, texts: dict[str, tuple[float, float]]):
        self.texts = texts

    def encode_texts(self, texts):
        return torch.tensor([self.texts[t] for t in texts], dtype=torch.float32)

    def encode_images(self, images):
        return images[:, :2, 0, 0].float()


def _image(r: int, g: int) -> torch.Tensor:
    x = torch.zeros(3, 4, 4, dtype=torch.uint8)
    x[0, 0, 0], x[1, 0, 0] = r, g
    return x


def test_projection_matches_a_hand_computation():
    # smiling: "face" (1, 0) -> "smiling face" (0, 2): ΔT = (−1, 1)/√2. tanned: (1, 0) -> (1, 1): ΔT = (1/√2 − 1, 1/√2).
    emb = TableEmbedder({"face": (1.0, 0.0), "smiling face": (0.0, 2.0), "tanned face": (1.0, 1.0)})
    measure = ClipProjectionFactors(emb, {"smiling": ("face", "smiling face"), "tanned": ("face", "tanned face")},
                                    templates=False)
    got = measure.measure(torch.stack([_image(3, 4), _image(10, 0)]))
    r = 1 / math.sqrt(2)
    tan_dir = (r - 1, r)
    tan_norm = math.hypot(*tan_dir)
    expected = [[(-0.6 + 0.8) * r, (0.6 * tan_dir[0] + 0.8 * tan_dir[1]) / tan_norm],  # image (3, 4): n = (0.6, 0.8)
                [-r, tan_dir[0] / tan_norm]]                                            # image (10, 0): n = (1, 0)
    assert measure.factor_names == ("smiling", "tanned")
    assert measure.factor_ranges == {"smiling": (-1.0, 1.0), "tanned": (-1.0, 1.0)}
    assert got.dtype == torch.float32 and got.shape == (2, 2)
    assert got.double().flatten().tolist() == pytest.approx([v for row in expected for v in row], abs=1e-6)


def test_identical_prompts_and_width_mismatch_are_refused():
    emb = TableEmbedder({"face": (1.0, 0.0), "same face": (2.0, 0.0)})
    with pytest.raises(DataError, match="ΔT = 0"):
        ClipProjectionFactors(emb, {"x": ("face", "same face")}, templates=False)
    with pytest.raises(DataError, match="differ in width"):
        direction_projection(torch.ones(2, 3), torch.ones(1, 2))


def test_shift_is_sdir_times_the_image_direction_norm_on_a_real_clip_backend():
    """(m(edit) − m(ref)) = (n(E_edit) − n(E_ref))·n(ΔT) = S_dir · |ΔI|: the projection and S_dir (its own code
    path, with the 79-template prompt ensemble) must agree on the tiny random open_clip."""
    from metrics import EditSet, get_metric
    from metrics.backends import load_backend
    from metrics.functional import image_direction

    gen = torch.Generator().manual_seed(0)
    ref = torch.randint(0, 256, (4, 3, 32, 32), generator=gen, dtype=torch.uint8)
    edit = torch.randint(0, 256, (4, 3, 32, 32), generator=gen, dtype=torch.uint8)
    embedder = load_backend("clip", "tiny-clip-random", device="cpu")
    measure = ClipProjectionFactors(embedder, {"smiling": ("face", "smiling face")}, templates=True)
    shift = (measure.measure(edit) - measure.measure(ref))[:, 0].double()

    sdir = get_metric("sdir@1", backend="tiny-clip-random", device="cpu", templates=True, bootstrap_resamples=10)
    result = sdir.compute(EditSet(ids=[f"i{k}" for k in range(4)], original=ref, edited=edit,
                                  source_text="face", target_text="smiling face"))
    norms = image_direction(embedder.encode_images(ref), embedder.encode_images(edit)).norm(dim=-1)
    expected = torch.tensor(result.per_image["value"], dtype=torch.float64) * norms
    assert shift.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_clip_projection_targets_must_be_suite_attributes(tmp_path):
    import shutil

    import yaml

    from benchmark.core.paths import manifests_dir
    from benchmark.inputs.manifests import ManifestRegistry, ResolutionErrors, resolve_suite

    root = tmp_path / "manifests"
    shutil.copytree(manifests_dir(), root)
    path = root / "suites" / "paper-table.yaml"
    document = yaml.safe_load(path.read_text())
    document["known_answers"]["targets"]["smiling"] = {"factor": "smile"}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(ResolutionErrors) as e:
        resolve_suite("paper-table", registry=ManifestRegistry(root))
    assert any("targets name other factors ['smile']" in str(p) for p in e.value.problems)


def test_paper_table_measures_every_attribute_whatever_the_selection(fixtures):
    """The harness's measure for paper-table's tiny profile: one factor per suite attribute, cosine ranges, the
    paper-claim column; a run of one attribute (`--attributes smiling`) gets the same measure, digest included, so
    its property units share cache keys with a run of all five."""
    from benchmark.inputs.manifests import ManifestRegistry, resolve_suite
    from benchmark.plan.known_answer_wiring import clip_projection_measure
    from benchmark.plan.planner import plan_from_manifests
    from benchmark.plan.plugins import load_plugins
    from benchmark.plan.request import RunRequest

    load_plugins()
    resolved = resolve_suite("paper-table", profile="tiny", registry=ManifestRegistry())
    measure = clip_projection_measure(resolved, torch.device("cpu"))
    assert measure.names == ("smiling", "sad", "tanned", "pixar", "neanderthal")
    assert set(measure.ranges.values()) == {(-1.0, 1.0)}
    assert measure.column == "paper-claim" and "no answer is known" in measure.provenance
    values = measure(torch.zeros(2, 3, 32, 32))
    assert values.shape == (2, 5) and bool((values.abs() <= 1.0).all())

    plan = plan_from_manifests("paper-table", RunRequest(suite="paper-table", profile="tiny", device="cpu",
                                                         attributes=["smiling"], data=str(fixtures / "celebahq")),
                               registry=ManifestRegistry())
    assert [a.name for a in plan.attributes] == ["smiling"]
    (gates,) = plan.extra_gates
    assert gates.measure.names == measure.names and gates.measure.digest == measure.digest
