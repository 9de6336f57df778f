"""Runtime support: checkpoints to resume from, dask clusters and fit slots, provenance tags, input
fingerprints, memory tuning and safe file replacement. Nothing here knows about super-resolution."""
