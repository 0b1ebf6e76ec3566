"""The synthetic face world (docs/synthetic.md): renderer, captions, splits, shipped models and their back-ends.

Imported by the harness as a plugin (`benchmark.loaders.PLUGIN_PACKAGES`), so importing it registers the world's
model loaders and metric back-ends.
"""
