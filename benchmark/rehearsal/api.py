"""The rehearsal as a library (a `rehearse` command wires it): forge, serve, generate manifests, run the journey.

    from benchmark.rehearsal.api import prepare_rehearsal
    with prepare_rehearsal(workdir, suites=["paper-table"], seed=0) as r:   # forges (cached), starts the mirror
        env = {**os.environ, **r.env()}
        for argv in r.journey("paper-table"):                            # fetch, validate, run --profile smoke
            subprocess.run([sys.executable, "run_all.py", *argv], env=env, check=True)

`prepare_rehearsal` writes under `workdir`: `manifests/` (the generated tree), `data/` (the CelebA-HQ stand-in),
`weights/` (empty: `fetch` fills it from the mirror), `lock.json` and `cache/`. The forged weights live in the
per-seed cache (`benchmark.rehearsal.tree.forged_tree`) unless `forge_root` is given; the mirror serves them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.rehearsal.forge_data import CelebaStandIn, forge_celebahq
from benchmark.rehearsal.manifest_tree import SUITES, write_manifest_tree
from benchmark.rehearsal.mirror import Mirror
from benchmark.rehearsal.tree import ForgedTree, forged_tree

#: `celebahq` is the ablation suite's CelebA-HQ profile: its default profile is the synthetic world.
REAL_PROFILES = {"ablation-ft": "celebahq"}


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

    def journey(self, suite: str, *, layout: str = "lmdb", device: str = "cpu",
                attributes: Iterable[str] = ("smiling",)) -> list[list[str]]:
        """The real user's commands against the mirror: fetch, validate, run (profile `smoke`, one attribute)."""
        data = ["--data", str(self.data(layout, "test"))]
        if self.stand_in.items.get("train"):
            data += ["--train-data", str(self.data(layout, "train"))]
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
    stand_in = forge_celebahq(workdir / "data", counts or {"test": 2, "train": 2}, seed=seed)
    seconds["forge_data"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    manifests = write_manifest_tree(workdir / "manifests", forged, stand_in)
    seconds["manifests"] = round(time.perf_counter() - started, 2)
    return Rehearsal(workdir, forged, stand_in, manifests, seconds)
