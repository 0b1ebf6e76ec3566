"""`python tests/harness_cli_standin.py ARGS`: the real CLI (`benchmark.cli.main`) with the stand-in suite
`standin` registered, for subprocess tests of resume, interrupts and bad input.

Environment: STANDIN_SLEEP (seconds per unit), STANDIN_LOG (file listing each computed unit), STANDIN_N (images).
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]  # the tests folder and the repository root, as run_all.py has

from benchmark.cli import main  # noqa: E402
from benchmark.core.bands import Band  # noqa: E402
from benchmark.inputs.selection import apply_limit, select_attributes  # noqa: E402
from benchmark.outputs.results import ReferenceValue  # noqa: E402
from benchmark.plan.request import RunRequest  # noqa: E402
from benchmark.plan.suite import CODE_SUITES  # noqa: E402

SHIFTS = {"smiling": 25.2 / 127.5, "sad": -25.2 / 127.5, "pixar": 50.2 / 127.5}


def build(request: RunRequest):
    import harness_standins as standins  # torch is imported only when a run really starts

    engine = standins.ShiftEngine(float(os.environ.get("STANDIN_SLEEP", "0")), os.environ.get("STANDIN_LOG"))
    plan = standins.plan(int(os.environ.get("STANDIN_N", "6")), engine=engine, shifts=SHIFTS, batch_size=1,
                         references=[ReferenceValue(metric="shift", attribute="pixar", column="known-answer", value=None,
                                                    band=Band(low=0.05, high=0.15), provenance="stand-in",
                                                    kind="known_answer"),
                                     # a claim that never holds: reported, it must never fail a run
                                     ReferenceValue(metric="shift", attribute="smiling", column="paper", value=0.1,
                                                    band=Band(low=10.0), provenance="stand-in")])
    plan.attributes = select_attributes(plan.attributes, request.attributes)
    plan.images = apply_limit(plan.images, request.limit)
    plan.limit = request.limit
    return plan


CODE_SUITES.register("standin", build)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_command="run"))
