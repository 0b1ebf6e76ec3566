"""The synthetic face world (docs/synthetic.md): renderer, captions, splits, shipped models and their back-ends.

Imported by the harness as a plugin (`benchmark.plan.loaders.PLUGIN_PACKAGES`): importing it registers the world's
model loaders (`synthetic-ddpm`, `synthetic-clip`), its metric back-ends (`synthetic-clip`, `synthetic-segmenter`,
`synthetic-oracle`) and the metric `attribute-shift@1`.
"""

from benchmark.synthetic import attribute_shift  # noqa: F401  (registers attribute-shift@1)
from benchmark.synthetic.backends import register as _register_backends
from benchmark.synthetic.loaders import register as _register_loaders

_register_loaders()
_register_backends()
