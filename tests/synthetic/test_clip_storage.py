"""How the synthetic CLIP is stored and versioned: from version 2 on, only the token-embedding rows that training
changed are shipped (the others are the seeded initialisation, which no caption reads); a loaded file encodes the
text it knows exactly as the full model does, and refuses text it does not know. Publishing a new version keeps the
earlier ones resolvable."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.core.errors import BenchError
from benchmark.core.hashing import sha256_file
from benchmark.synthetic.clip_model import (
    CLIP_CONFIG,
    TOKEN_EMBEDDING,
    ClipTrainConfig,
    initial_clip,
    keep_token_rows,
    tokenizer,
    train_clip,
    trained_token_rows,
)

SOT, EOT = 49406, 49407  # open_clip's start and end tokens: in every caption


def _ids(texts: list[str]) -> list[int]:
    return sorted({int(i) for i in tokenizer()(texts).flatten()} - {0})


def _touched_clip(texts: list[str], seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded initial CLIP whose token rows for `texts` moved, as training on captions of those words moves them."""
    state = {k: v.clone() for k, v in initial_clip(seed).state_dict().items()}
    state[TOKEN_EMBEDDING][_ids(texts)] += 0.01
    return state


def _save(path, tensors, seed: int = 0) -> tuple:
    from benchmark.core.atomic import save_safetensors

    info = {"config": CLIP_CONFIG, "train": {"seed": seed}}
    save_safetensors(path, tensors, metadata={"info": json.dumps(info)})
    return path, sha256_file(path)


def _full_model(state):
    """The model as the loaders give it: frozen, which lets PyTorch's attention take its inference fast path (its
    results differ from the training path's in the last bits, so only like compares with like)."""
    model = initial_clip(0)
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


def test_training_leaves_every_token_row_no_caption_reads_at_its_initialisation():
    """The storage rests on this: embedding rows get no weight decay, and AdamW moves a row only through its
    gradient, so a few steps of real training change a few rows out of 49,408."""
    from benchmark.synthetic.oracle import person_factors
    from benchmark.synthetic.renderer import render_batch

    factors = person_factors(4, 2, seed=77, identity_base=4_000_000)
    images, _ = render_batch(factors)
    cfg = ClipTrainConfig(steps=3, batch_size=4, warmup=1)
    model, _ = train_clip(images, factors, cfg, log_every=100)
    rows = trained_token_rows(model.state_dict(), cfg.seed)
    assert {0, SOT, EOT} <= set(rows.tolist())
    assert 3 < len(rows) < 200  # 12 short captions: tens of distinct tokens, not the vocabulary
    initial = initial_clip(cfg.seed).token_embedding.weight
    unread = torch.ones(len(initial), dtype=torch.bool)
    unread[rows] = False
    assert torch.equal(model.token_embedding.weight[unread], initial[unread])


def test_trained_rows_are_the_changed_rows_and_padding():
    state = _touched_clip(["smiling face"])
    assert trained_token_rows(state, 0).tolist() == sorted({0, *_ids(["smiling face"])})
    assert trained_token_rows(state, 1).numel() > 40_000  # another seed's initialisation: every row differs


def test_a_clip_stored_with_its_trained_rows_encodes_its_text_exactly_and_refuses_other_text(tmp_path):
    from benchmark.synthetic.weights import load_clip

    known = ["smiling face", "a photo of a smiling face", "face"]
    state = _touched_clip(known)
    rows = trained_token_rows(state, 0)
    path, sha = _save(tmp_path / "clip.safetensors", keep_token_rows(state, rows))
    assert path.stat().st_size < 0.3 * 4 * sum(v.numel() for v in state.values())  # the embedding dominated

    model, tok = load_clip(path, sha)
    full = _full_model(state)
    with torch.no_grad():
        # padding (row 0) comes after the end token, which causal attention never lets the end token see
        assert torch.equal(model.encode_text(tok(known)), full.encode_text(tok(known)))
    with pytest.raises(BenchError, match="knows only the tokens of its training captions") as err:
        model.encode_text(tok(["purple face"]))
    assert "purple" in str(err.value) and "captions.py" in err.value.fix


def test_a_stored_row_index_that_does_not_fit_is_refused(tmp_path):
    from benchmark.synthetic.weights import load_clip

    state = _touched_clip(["face"])
    kept = keep_token_rows(state, trained_token_rows(state, 0))
    kept["token_embedding.rows"] = kept["token_embedding.rows"] + 49_408  # past the vocabulary
    with pytest.raises(BenchError, match="does not index"):
        load_clip(*_save(tmp_path / "bad.safetensors", kept))


def test_the_shipped_clip_2_knows_every_prompt_the_suites_give_it():
    """The Asyrp loss averages its text direction over the 79 ImageNet templates; S_dir reads the bare prompts."""
    from benchmark.synthetic.captions import NEUTRAL_PROMPT, PROMPTS
    from benchmark.synthetic.weights import load_clip, manifest_file
    from models.clip_loss import IMAGENET_TEMPLATES

    path, sha = manifest_file("synthetic-clip@2")
    model, tok = load_clip(path, sha)
    prompts = [NEUTRAL_PROMPT, *PROMPTS.values()]
    texts = prompts + [t.format(p) for t in IMAGENET_TEMPLATES for p in prompts]
    with torch.no_grad():
        assert torch.isfinite(model.encode_text(tok(texts))).all()
    assert path.stat().st_size < manifest_file("synthetic-clip@1")[0].stat().st_size / 3


def test_backend_weights_are_checked_against_the_version_that_pins_them():
    """A suite naming synthetic-clip@1 passes @1's file to the back-end; its digest must come from @1's manifest,
    not from the latest one (`synthetic-clip.yaml`, @2)."""
    from benchmark.synthetic.weights import manifest_file, pinned_file, shipped_file

    v1, v2 = manifest_file("synthetic-clip@1"), manifest_file("synthetic-clip@2")
    assert v1[0] != v2[0] and v1[1] != v2[1]
    assert pinned_file("synthetic-clip") == shipped_file("synthetic-clip") == v2
    assert pinned_file("synthetic-clip", v1[0]) == (v1[0].resolve(), v1[1])
    assert pinned_file("synthetic-clip", v2[0]) == (v2[0].resolve(), v2[1])
    with pytest.raises(BenchError, match="no version of the model manifest 'synthetic-clip' pins"):
        pinned_file("synthetic-clip", shipped_file("synthetic-oracle")[0])


@pytest.fixture
def tmp_repo(tmp_path, monkeypatch):
    from benchmark.synthetic import publish as P

    repo = tmp_path / "repo"
    monkeypatch.setattr(P, "REPO_ROOT", repo)
    monkeypatch.setattr(P, "RESULTS_DIR", repo / "results")
    monkeypatch.setattr(P, "manifests_dir", lambda: repo / "manifests")
    (repo / "manifests" / "models").mkdir(parents=True)
    return repo


def _trained(out, texts: list[str]):
    from benchmark.core.atomic import write_json

    out.mkdir(parents=True, exist_ok=True)
    _save(out / "clip.safetensors", _touched_clip(texts))
    write_json(out / "clip.json", {"config": CLIP_CONFIG, "train": {"seed": 0, "skin_chroma_jitter": 0.1},
                                   "wall_s": 1.0, "threads": 2})
    return out


def test_publishing_a_new_version_keeps_the_earlier_one(tmp_repo, tmp_path):
    import yaml

    from benchmark.synthetic.publish import publish
    from benchmark.synthetic.weights import load_clip

    models = tmp_repo / "manifests" / "models"
    publish(_trained(tmp_path / "one", ["face"]), ["clip"])
    publish(_trained(tmp_path / "two", ["smiling face"]), ["clip"], version=2)

    latest, first = (yaml.safe_load((models / name).read_text())
                     for name in ("synthetic-clip.yaml", "synthetic-clip-v1.yaml"))
    assert (latest["version"], first["version"]) == (2, 1)
    (f1,), (f2,) = first["source"]["files"], latest["source"]["files"]
    assert f1["path"] == "benchmark/synthetic/assets/clip.safetensors"
    assert f2["path"] == "benchmark/synthetic/assets/clip-v2.safetensors"
    assert sha256_file(tmp_repo / f1["path"]) == f1["sha256"] and sha256_file(tmp_repo / f2["path"]) == f2["sha256"]
    assert "--threads 2 --clip-skin-chroma-jitter 0.1" in latest["provenance"]
    assert "publish --out DIR --version 2" in latest["provenance"] and "trained token rows only" in latest["provenance"]
    assert "token rows" not in first["provenance"]  # @1 ships every row, as its recipe always did
    assert (tmp_repo / "results/synthetic-world/training/clip-v2.json").is_file()

    model, tok = load_clip(tmp_repo / f2["path"], f2["sha256"])
    stored = {k: v.half().float() for k, v in _touched_clip(["smiling face"]).items()}  # shipped as float16
    with torch.no_grad():
        text = tok(["smiling face"])
        assert torch.equal(model.encode_text(text), _full_model(stored).encode_text(text))

    with pytest.raises(BenchError, match="already holds version 2"):
        publish(tmp_path / "one", ["clip"])
    assert yaml.safe_load((models / "synthetic-clip.yaml").read_text())["version"] == 2


@pytest.mark.parametrize("version", [1, 2])
def test_the_attribute_writer_still_writes_each_released_version_word_for_word(version):
    """`python -m benchmark.synthetic.attributes` learnt versions after @1 was released: given @1's inputs it must
    still write @1's manifests unchanged, and @2's from @2's (a released manifest never changes)."""
    import yaml

    from benchmark.core.paths import RESULTS_DIR, manifests_dir
    from benchmark.synthetic.attributes import ATTRIBUTES, attribute_doc, t_select_name

    chosen = json.loads((RESULTS_DIR / "synthetic-world" / t_select_name(version)).read_text())["used"]
    for name in ATTRIBUTES:
        file = f"synthetic-{name}-v1.yaml" if version == 1 else f"synthetic-{name}.yaml"
        released = yaml.safe_load((manifests_dir() / "attributes" / file).read_text())
        assert released["version"] == version
        doc = attribute_doc(name, chosen["t_edit"][name], chosen["t_boost"], chosen["text_cosine"][name],
                            version=version, clip=f"synthetic-clip@{version}")
        assert doc == released, name
