"""Baseline ensembles compared with SCD, and one loader for every saved model.

=========  ==============================  ============================================
name       class                           what
=========  ==============================  ============================================
``mlp``    :class:`MLPEnsemble`            scikit-learn MLPs, 20 logistic hidden units
``bnn``    :class:`BNNEnsemble`            larq binarized networks (TensorFlow, lazy)
``rf``     :class:`RandomForestEnsemble`   a random forest, one vote per tree
``cnn``    :class:`CNNEnsemble`            small torch CNNs (LeNet-style, 1-D for vectors)
=========  ==============================  ============================================

:func:`load_model` reads any model file this package writes (SCD ensembles included) by
the kind recorded in the file, and :func:`model_info` describes one without building it.
Neither ever unpickles.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

from eval.io import ZIP_READ_ERRORS

from .bnn import BNNEnsemble
from .cnn import CNNEnsemble
from .forest import RandomForestEnsemble
from .mlp import MLPEnsemble

__all__ = ["BASELINES", "BNNEnsemble", "CNNEnsemble", "MLPEnsemble", "RandomForestEnsemble", "load_model",
           "model_info"]

BASELINES = {"mlp": MLPEnsemble, "bnn": BNNEnsemble, "rf": RandomForestEnsemble, "cnn": CNNEnsemble}


def model_info(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a saved model (kind, estimator, parameters, seed, ...) and the shapes
    of its arrays, read without building the model."""
    name = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {name!r}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "manifest.json" in names:  # a BNN: Keras members + JSON manifest
                return json.loads(zf.read("manifest.json"))
    except (*ZIP_READ_ERRORS, json.JSONDecodeError) as exc:
        raise ValueError(f"{name!r} is not a readable scd model file (truncated or corrupt?): {exc}") from None
    from scd._persist import load_bundle

    meta, arrays = load_bundle(path)
    meta["arrays"] = {k: list(v.shape) for k, v in arrays.items() if k != "classes"}
    if "classes" in arrays:
        meta["classes"] = arrays["classes"].tolist()
    return meta


def load_model(path: str | os.PathLike, **kwargs: Any):
    """Load any model saved by this package: an SCD ensemble or a baseline (keyword
    arguments go to the baseline's loader, e.g. ``device`` for the CNN)."""
    kind = model_info(path).get("kind")
    if kind == "scd-ensemble":
        import scd

        return scd.load(path)
    loaders = {"baseline-mlp": "mlp", "baseline-rf": "forest", "baseline-cnn": "cnn", "baseline-bnn": "bnn"}
    if kind not in loaders:
        raise ValueError(f"{os.fspath(path)!r} holds a {kind!r}, which is not a model this package can load.")
    import importlib

    return importlib.import_module(f"{__name__}.{loaders[kind]}").load(path, **kwargs)
