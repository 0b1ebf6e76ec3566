"""Everything a run reads, checked before any compute: manifests (schema, files, registry, resolution), the lock
file of recorded digests, the image data, the weights (`fetch`, the only code that downloads) and `validate`, the
pre-run checks that the planner also raises."""
