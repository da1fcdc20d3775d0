"""Evaluation: kNN and L-BFGS probes of frozen features, the published SGD linear and fine-tuning protocols, reports."""

from jax_ssl.evaluate._clustering import clustering_accuracy, clustering_metrics, kmeans_baseline
from jax_ssl.evaluate._knn import knn_accuracy, knn_predict
from jax_ssl.evaluate._linear import linear_probe
from jax_ssl.evaluate._monitor import KnnMonitor
from jax_ssl.evaluate._supervised import ProtocolConfig, finetune, linear_sgd, vit_layer_ids
from jax_ssl.evaluate._run import (cluster_predictions, evaluate_features, evaluate_method, extract_features, format_report, pixel_features,
                                  pretext_accuracy, pretext_scores)

__all__ = ["KnnMonitor", "ProtocolConfig", "clustering_accuracy", "clustering_metrics", "kmeans_baseline", "cluster_predictions", "knn_accuracy", "knn_predict", "linear_probe", "linear_sgd", "finetune",
           "evaluate_features", "evaluate_method", "extract_features", "format_report", "pixel_features",
           "pretext_accuracy", "pretext_scores", "vit_layer_ids"]
