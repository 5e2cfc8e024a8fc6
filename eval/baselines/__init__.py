"""Baseline ensembles compared with SCD, and one loader for every saved model.

===========  =============================  =================================================
name         class                          what
===========  =============================  =================================================
``mlp``      :class:`MLPEnsemble`           scikit-learn MLPs, 20 logistic hidden units
``bnn``      :class:`BNNEnsemble`           larq binarized networks (TensorFlow, lazy)
``rf``       :class:`RandomForestEnsemble`  a random forest, one vote per tree
``cnn``      :class:`CNNEnsemble`           small torch CNNs (LeNet-style, 1-D for vectors)
``wordcnn``  :class:`WordCNNEnsemble`       Kim's (2014) CNN over stacked word vectors (text)
===========  =============================  =================================================

:func:`load_model` reads any model file this package writes (SCD ensembles included) by
the kind recorded in the file, opening it once; :func:`load_with_fingerprint` also gives the
file's fingerprint from that read, and :func:`model_info` describes a model without building
it.  None of them ever unpickles.  They are :mod:`scd.persist`'s, with every baseline's loader
registered by importing this package.
"""

from __future__ import annotations

from scd.persist import load_model, load_with_fingerprint, model_info

from .bnn import BNNEnsemble
from .cnn import CNNEnsemble
from .forest import RandomForestEnsemble
from .mlp import MLPEnsemble
from .wordcnn import WordCNNEnsemble

__all__ = ["BASELINES", "BNNEnsemble", "CNNEnsemble", "MLPEnsemble", "RandomForestEnsemble", "WordCNNEnsemble",
           "load_model", "load_with_fingerprint", "model_info"]

BASELINES = {"mlp": MLPEnsemble, "bnn": BNNEnsemble, "rf": RandomForestEnsemble, "cnn": CNNEnsemble,
             "wordcnn": WordCNNEnsemble}
