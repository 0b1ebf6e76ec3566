"""The bottom of the house: errors, registries, hashing, atomic writes, paths and environment variables, the
runtime (device, seeds) and the image convention. Import-light; the only part of `benchmark` that `models/` and
`metrics/` may import."""
