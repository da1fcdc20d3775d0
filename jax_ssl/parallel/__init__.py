"""Devices, sharding and dataset-wide feature extraction: the layer below `train/` and `evaluate/`.

Both the trainer (dataset-level passes of clustering methods, the kNN monitor) and the
evaluators (kNN, linear probe) extract features of a whole split with the same sharded code,
so it lives here rather than in either of them.
"""

from jax_ssl.parallel._cluster import KMeansResult, kmeans, nearest_neighbors, pca_whiten, per_example
from jax_ssl.parallel._features import (ShardedFeatures, extract_features, extract_features_sharded,
                                        make_embed_fn)
from jax_ssl.parallel._mesh import (DATA_AXIS, any_process, batch_sharding, check_batch_divisible, make_mesh,
                                    replicated, shard_batch, to_host)

__all__ = ["KMeansResult", "kmeans", "nearest_neighbors", "pca_whiten", "per_example", "ShardedFeatures", "extract_features", "extract_features_sharded", "make_embed_fn", "DATA_AXIS",
           "any_process", "batch_sharding", "check_batch_divisible", "make_mesh", "replicated", "shard_batch",
           "to_host"]
