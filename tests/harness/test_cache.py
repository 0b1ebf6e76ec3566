"""The content-addressed stage cache: keys, atomic entries, damage detection, the per-key lock."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

import pytest
import torch

from benchmark.core.hashing import json_digest
from benchmark.run.cache import StageCache, StageOutput, stage_key


def test_key_changes_with_every_input():
    base = {"stage": "invert", "code_version": 1, "spec": {"n_inv": 40},
            "digests": {"image": "a"}, "upstream": {"model": "k"}, "environment": {"torch": "2"}}

    def key(d):
        return stage_key(d["stage"], d["code_version"], d["spec"], digests=d["digests"], upstream=d["upstream"],
                         environment=d["environment"])

    k0 = key(base)
    variants = [
        {**base, "stage": "edit"}, {**base, "code_version": 2}, {**base, "spec": {"n_inv": 41}},
        {**base, "digests": {"image": "b"}}, {**base, "upstream": {"model": "j"}},
        {**base, "environment": {"torch": "3"}},
    ]
    keys = {key(v) for v in variants}
    assert k0 not in keys and len(keys) == len(variants)
    # Independent reference: the key is the sha256 of the canonical JSON of exactly these fields.
    assert k0 == json_digest({"cache_format": 2, **base})
    # Key order in the spec does not matter (canonical JSON).
    assert key({**base, "spec": {"b": 1, "a": 2}}) == key({**base, "spec": {"a": 2, "b": 1}})


def test_roundtrip_hit_and_fresh(tmp_path, caplog):
    cache = StageCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return StageOutput(tensors={"x": torch.arange(6.0).reshape(2, 3)}, data={"loss": [1.0, 0.5]})

    caplog.set_level("INFO", logger="benchmark.run.cache")
    e1 = cache.get_or_compute("train", "k" * 64, compute, spec={"a": 1}, label="smiling")
    e2 = cache.get_or_compute("train", "k" * 64, compute, spec={"a": 1}, label="smiling")
    assert len(calls) == 1 and not e1.hit and e2.hit
    assert torch.equal(e2.output.tensors["x"], torch.arange(6.0).reshape(2, 3))
    assert e2.output.data == {"loss": [1.0, 0.5]}
    assert f"cache hit train[smiling] key={'k' * 64}" in caplog.text
    e3 = cache.get_or_compute("train", "k" * 64, compute, fresh=True)
    assert len(calls) == 2 and not e3.hit
    assert [p.name for p in (tmp_path / "train").iterdir() if not p.name.endswith(".lock")] == ["k" * 64]


def test_damaged_entry_is_recomputed_not_read(tmp_path):
    cache = StageCache(tmp_path)
    out = StageOutput(tensors={"x": torch.ones(4)})
    entry = cache.get_or_compute("edit", "d" * 64, lambda: out)
    tensor_file = entry.path / "tensors.safetensors"
    raw = bytearray(tensor_file.read_bytes())
    raw[-1] ^= 0xFF
    tensor_file.write_bytes(bytes(raw))
    assert cache.load("edit", "d" * 64) is None
    again = cache.get_or_compute("edit", "d" * 64, lambda: StageOutput(tensors={"x": torch.ones(4)}))
    assert not again.hit and cache.load("edit", "d" * 64) is not None
    # meta.json that names another key is refused too.
    meta = entry.path / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "key": "other"}))
    assert cache.load("edit", "d" * 64) is None


def test_leftover_temp_folder_from_a_killed_writer_is_removed(tmp_path):
    cache = StageCache(tmp_path)
    leftover = tmp_path / "invert" / f".tmp-{'e' * 64}-99999"
    leftover.mkdir(parents=True)
    (leftover / "tensors.safetensors").write_bytes(b"half")
    assert cache.load("invert", "e" * 64) is None  # a temp folder is never read as an entry
    cache.get_or_compute("invert", "e" * 64, lambda: StageOutput(data={"ok": True}))
    assert not leftover.exists()


def _slow_writer(root, out_queue):
    cache = StageCache(root)

    def compute():
        out_queue.put(("computing", time.time()))
        time.sleep(1.0)
        return StageOutput(data={"by": mp.current_process().name})

    entry = cache.get_or_compute("train", "c" * 64, compute)
    out_queue.put(("done", entry.hit, entry.output.data["by"]))


def test_concurrent_runs_compute_an_entry_once(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_slow_writer, args=(str(tmp_path), queue), name=f"w{i}") for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    msgs = [queue.get(timeout=5) for _ in range(3)]
    computing = [m for m in msgs if m[0] == "computing"]
    done = [m for m in msgs if m[0] == "done"]
    assert len(computing) == 1, "the second run must wait on the lock and read the first one's entry"
    assert sorted(m[1] for m in done) == [False, True]
    assert len({m[2] for m in done}) == 1  # both got the same entry


def test_unwritable_cache_is_a_bench_error(tmp_path):
    from benchmark.core.errors import BenchError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = StageCache(blocker / "cache")
    with pytest.raises(BenchError, match="ASYRP_CACHE"):
        cache.get_or_compute("invert", "f" * 64, lambda: StageOutput(data={}))


def test_code_digest_follows_the_package_source(tmp_path, monkeypatch):
    from benchmark.run.cache import code_digest

    pkg = tmp_path / "fakepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "sub" / "mod.py").write_text("y = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code_digest.cache_clear()
    before = code_digest("fakepkg")
    (pkg / "sub" / "mod.py").write_text("y = 3\n")
    code_digest.cache_clear()
    assert code_digest("fakepkg") != before
    code_digest.cache_clear()
