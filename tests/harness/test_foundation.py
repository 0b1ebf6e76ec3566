import json

import pytest

from benchmark.core.atomic import atomic_open, write_json
from benchmark.core.errors import BenchError, DataError, UnknownNameError
from benchmark.core.hashing import canonical_json, json_digest, sha256_bytes
from benchmark.core.paths import safe_join
from benchmark.core.registry import Registry


def test_registry_did_you_mean():
    reg: Registry[int] = Registry("metric")
    reg.register("sdir@1", 1)
    reg.register("fid@1", 2)
    with pytest.raises(UnknownNameError) as e:
        reg.get("sdr@1")
    assert "Did you mean: sdir@1" in str(e.value)
    assert "Available: fid@1, sdir@1" in str(e.value)
    assert isinstance(e.value, BenchError) and e.value.exit_code == 2


def test_registry_rejects_bad_and_duplicate_names():
    reg: Registry[int] = Registry("thing")
    with pytest.raises(ValueError):
        reg.register("has space", 1)
    with pytest.raises(ValueError):
        reg.register("a/b", 1)
    reg.register("a", 1)
    with pytest.raises(ValueError):
        reg.register("a", 2)


def test_canonical_json_is_order_independent_and_hand_checked():
    assert canonical_json({"b": 1, "a": (1, 2)}) == '{"a":[1,2],"b":1}'
    assert json_digest({"b": 1, "a": 2}) == json_digest({"a": 2, "b": 1})
    assert json_digest({"a": 1}) == sha256_bytes(b'{"a":1}')
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write("half")
        raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_safe_join_refuses_escape(tmp_path):
    assert safe_join(tmp_path, "a/b.png") == tmp_path.resolve() / "a" / "b.png"
    for bad in ["../x.png", "a/../../x", "/etc/passwd"]:
        with pytest.raises(DataError):
            safe_join(tmp_path, bad)


def test_uint8_round_trip_and_checks():
    import torch

    from benchmark.core.images import check_uint8_images, from_uint8, to_uint8

    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(1, 3, 16, 16).contiguous()
    assert torch.equal(to_uint8(from_uint8(u)), u)
    assert to_uint8(torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])).tolist() == [0, 0, 128, 255, 255]
    with pytest.raises(DataError, match="uint8"):
        check_uint8_images(u.float())
    with pytest.raises(DataError, match="grayscale"):
        check_uint8_images(u[:, :1])
    with pytest.raises(DataError, match="4 dims"):
        check_uint8_images(u[0])


def test_atomic_dir_swaps_in_whole_folders_and_keeps_the_old_one_on_error(tmp_path):
    from benchmark.core.atomic import atomic_dir

    target = tmp_path / "report"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("crash while writing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left behind
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    with atomic_dir(target) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
