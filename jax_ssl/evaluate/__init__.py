"""Evaluation of frozen representations: kNN, linear probe, baselines, reports."""

from jax_ssl.evaluate._knn import knn_accuracy, knn_predict
from jax_ssl.evaluate._linear import linear_probe
from jax_ssl.evaluate._monitor import KnnMonitor
from jax_ssl.evaluate._run import (evaluate_features, evaluate_method, extract_features, format_report, pixel_features,
                                  pretext_accuracy)

__all__ = ["KnnMonitor", "knn_accuracy", "knn_predict", "linear_probe", "evaluate_features", "evaluate_method",
           "extract_features", "format_report", "pixel_features", "pretext_accuracy"]
