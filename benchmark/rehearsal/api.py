"""The rehearsal as a library (a `rehearse` command wires it): forge, serve, generate manifests, run the journey.

    from benchmark.rehearsal.api import prepare_rehearsal
    with prepare_rehearsal(workdir, suites=["paper-table"], seed=0) as r:   # forges (cached), starts the mirror
        env = {**os.environ, **r.env()}
        for argv in r.journey("paper-table"):                            # fetch, validate, run --profile smoke
            subprocess.run([sys.executable, "run_all.py", *argv], env=env, check=True)

`prepare_rehearsal` writes under `workdir`: `manifests/` (the generated tree), `data/` (the CelebA-HQ stand-in;
for an LSUN suite a generated `<category>_val_lmdb`),
`weights/` (empty: `fetch` fills it from the mirror), `lock.json` and `cache/`. The forged weights live in the
per-seed cache (`benchmark.rehearsal.tree.forged_tree`) unless `forge_root` is given; the mirror serves them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.rehearsal.forge_data import CelebaStandIn, forge_celebahq
from benchmark.rehearsal.forge_lsun import LsunStandIn, forge_lsun
from benchmark.rehearsal.manifest_tree import (
    LSUN_SMOKE_COUNT,
    LSUN_SMOKE_DATASETS,
    SUITES,
    write_manifest_tree,
)
from benchmark.rehearsal.mirror import Mirror
from benchmark.rehearsal.tree import ForgedTree, forged_tree

#: `celebahq` is the ablation suite's CelebA-HQ profile: its default profile is the synthetic world.
REAL_PROFILES = {"ablation-ft": "celebahq"}
#: the attribute a rehearsal edits by default (`--attributes` chooses others).
SMOKE_ATTRIBUTES = {"lsun-church-released": ("church-gothic",), "lsun-bedroom-released": ("bedroom-hotel",)}


def smoke_attributes(suite: str) -> tuple[str, ...]:
    return SMOKE_ATTRIBUTES.get(suite, ("smiling",))


def lsun_datasets(suites: Iterable[str]) -> list[str]:
    """The LSUN datasets (manifest names) the suites read; their stand-in is a generated LMDB."""
    from benchmark.core.paths import MANIFESTS_DIR
    from benchmark.inputs.manifests import ManifestRegistry

    registry = ManifestRegistry(MANIFESTS_DIR)
    names = [str(registry.get("suite", s).manifest.dataset or "").split("@")[0] for s in suites]
    return [n for n in dict.fromkeys(names) if n in LSUN_SMOKE_DATASETS]


def suite_models(suites: Iterable[str]) -> list:
    """Every model manifest (with files) the suites use with their real models and default attributes (a suite of
    all 18 released f_t rehearses the five it edits by default), in a stable order."""
    from benchmark.core.paths import MANIFESTS_DIR
    from benchmark.inputs.manifests import ManifestRegistry, resolve_suite
    from benchmark.inputs.selection import narrow_to_selection

    registry = ManifestRegistry(MANIFESTS_DIR)
    models: dict[str, object] = {}
    for suite in suites:
        resolved = narrow_to_selection(resolve_suite(suite, profile=REAL_PROFILES.get(suite), registry=registry),
                                       None)
        for ref, r in sorted(resolved.models().items()):
            if r.manifest.files and getattr(r.manifest.source, "type", None) in ("url", "hub"):
                models.setdefault(ref, r.manifest)
    return list(models.values())


@dataclass
class Rehearsal:
    workdir: Path
    forged: ForgedTree
    stand_in: CelebaStandIn
    manifests: Path
    seconds: dict[str, float] = field(default_factory=dict)
    mirror: Mirror | None = None
    lsun: LsunStandIn | None = None

    def start(self) -> Rehearsal:
        self.mirror = Mirror(self.forged.root, etags={f["path"]: f["sha256"] for files in self.forged.files.values()
                                                      for f in files.values()}).start()
        return self

    def stop(self) -> None:
        if self.mirror is not None:
            self.mirror.stop()

    def __enter__(self) -> Rehearsal:
        return self.start() if self.mirror is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """What the journey's commands need: the generated manifests, the mirror for both source kinds, and
        private weights, lock and stage-cache folders."""
        if self.mirror is None:
            raise RuntimeError("start the mirror first (`with prepare_rehearsal(...)` or `.start()`)")
        w = self.workdir
        return {"ASYRP_MANIFESTS": str(self.manifests), "ASYRP_MIRROR": self.mirror.url,
                "HF_ENDPOINT": self.mirror.url, "ASYRP_WEIGHTS": str(w / "weights"),
                "ASYRP_LOCK": str(w / "lock.json"), "ASYRP_CACHE": str(w / "cache")}

    def data(self, layout: str = "lmdb", split: str = "test") -> Path:
        """The stand-in as one layout: `lmdb`, `raw-folder`, `raw-zip`, `celebamask-folder`, `celebamask-zip`."""
        return self.stand_in.paths[f"lmdb-{split}" if layout == "lmdb" else layout]

    def suite_data(self, suite: str, layout: str = "lmdb") -> list[str]:
        """The `--data` (and `--train-data`) options of a suite's smoke run: the LSUN LMDB or the CelebA-HQ
        stand-in in `layout`."""
        for name in lsun_datasets([suite]) if self.lsun is not None else ():
            if name in self.lsun.paths:
                return ["--data", str(self.lsun.paths[name])]
        data = ["--data", str(self.data(layout, "test"))]
        if self.stand_in.items.get("train"):
            data += ["--train-data", str(self.data(layout, "train"))]
        return data

    def journey(self, suite: str, *, layout: str = "lmdb", device: str = "cpu",
                attributes: Iterable[str] | None = None) -> list[list[str]]:
        """The real user's commands against the mirror: fetch, validate, run (profile `smoke`, one attribute:
        `smoke_attributes(suite)` unless given)."""
        data = self.suite_data(suite, layout)
        attributes = list(attributes) if attributes else list(smoke_attributes(suite))
        return [["fetch", "--suite", suite, "--profile", "smoke"],
                ["validate", "--suite", suite, "--profile", "smoke", *data, "--device", device],
                ["run", "--suite", suite, "--profile", "smoke", *data, "--device", device, "--attributes",
                 *attributes, "--out", str(self.workdir / "runs")]]


def prepare_rehearsal(workdir: Path, *, suites: Iterable[str] = ("paper-table",), seed: int = 0,
                      forge_root: Path | None = None, counts: dict[str, int] | None = None,
                      progress=None) -> Rehearsal:
    """Forge (or reuse) the suites' model files, forge the CelebA-HQ stand-in and write the manifest tree."""
    suites = list(suites)
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        from benchmark.core.registry import require_choice

        require_choice("rehearsal suite", unknown[0], list(SUITES))
    workdir = Path(workdir)
    seconds = {}
    started = time.perf_counter()
    forged = forged_tree(suite_models(suites), seed=seed, root=forge_root, progress=progress)
    seconds["forge_models"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    lsun = lsun_datasets(suites)
    celeba_suites = any(not lsun_datasets([s]) for s in suites)
    stand_in = (forge_celebahq(workdir / "data", counts or {"test": 2, "train": 2}, seed=seed) if celeba_suites
                else CelebaStandIn(workdir / "data"))
    lsun_stand_in = forge_lsun(workdir / "data", lsun, LSUN_SMOKE_COUNT + 1, seed=seed) if lsun else None
    seconds["forge_data"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    manifests = write_manifest_tree(workdir / "manifests", forged, stand_in, lsun=lsun_stand_in)
    seconds["manifests"] = round(time.perf_counter() - started, 2)
    return Rehearsal(workdir, forged, stand_in, manifests, seconds, lsun=lsun_stand_in)
