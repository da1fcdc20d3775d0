"""Clustering primitives (pure jax + numpy, no TensorFlow): DeepCluster-v2's spherical k-means
and SeLA's Sinkhorn-Knopp self-labelling, both chunked over the rows so that N = 1.28M fits."""

from jax_ssl.cluster._kmeans import spherical_kmeans
from jax_ssl.cluster._sela import sela_labels

__all__ = ["sela_labels", "spherical_kmeans"]
