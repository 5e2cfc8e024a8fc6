"""The SCD paper's reference figures, in one place: its Tables 1 to 8 and the claims of Figures 1 and 2.

The paper is "Defending against black-box adversarial attacks with gradient-free trained sign
activation neural networks"; its plain text is ``shared/papers/003_e2bf0576be711c9c.txt``
(:data:`PAPER_FILE`) beside the checkout, and ``tests/test_eval_paper.py`` checks every figure
here against the tables of that text, so a typo or a drifting copy fails a test.  Reports
and benchmarks read the figures from here and keep no copies.

Conventions: accuracies are percent, as printed; distortions are L2 norms of inputs scaled to
[0, 1]; ``None`` is the paper's "NA".  Each table is ``{row: {column: value}}`` with the
paper's labels in lower case: rows are measurements (or datasets), columns are models
(``scd01``, ``scdce``, ``scdcebnn``, ``mlp``, ``bnn``, ``resnet50``, ``lenet``, ``rf``; ``cnn`` is
the paper's WordCNN in Table 7 and its 1-D CNN in Table 8).

The distortions of Tables 2, 3, 5 and 8 are **means** over the test images of each image's
minimum over runs, not medians: compare them with our mean, and read our median beside them
only as a robustness check.  Table 4 gives one image per dataset.
"""

from __future__ import annotations

__all__ = ["CIFAR", "FIGURE1", "FIGURE2", "PAPER_FILE", "TABLE1_ACCURACY", "TABLE1_SECONDS", "TABLE2", "TABLE3",
           "TABLE4", "TABLE5", "TABLE6", "TABLE7", "TABLE8"]

PAPER_FILE = "003_e2bf0576be711c9c.txt"

# Table 1: training time of a single run (seconds) and test accuracy of 100-vote ensembles (%), binary tasks.
TABLE1_SECONDS = {
    "cifar10": {"scd01": 64, "scdce": 56, "scdcebnn": 422, "mlp": 13, "bnn": 106},
    "celeba": {"scd01": 20, "scdce": 18, "scdcebnn": 111, "mlp": 41, "bnn": 32},
    "gtsrb": {"scd01": 22, "scdce": 22, "scdcebnn": 92, "mlp": 8, "bnn": 42},
    "imagenet": {"scd01": 77, "scdce": 54, "scdcebnn": 338, "mlp": 115, "bnn": 78},
}
TABLE1_ACCURACY = {
    "cifar10": {"scd01": 87, "scdce": 88, "scdcebnn": 87, "mlp": 90, "bnn": 83},
    "celeba": {"scd01": 79, "scdce": 81, "scdcebnn": 72, "mlp": 78, "bnn": 76},
    "gtsrb": {"scd01": 97, "scdce": 97, "scdcebnn": 98, "mlp": 99, "bnn": 96},
    "imagenet": {"scd01": 72, "scdce": 73, "scdcebnn": 71, "mlp": 72, "bnn": 66},
}

# Table 2: CIFAR-10 0 vs 1, clean test accuracy (%) and the mean minimum L2 of 10 random test
# images under HopSkipJump, Boundary Attack and RayS (the minimum of 10 runs per image).
TABLE2 = {
    "accuracy": {"scd01": 87, "scdce": 88, "scdcebnn": 88, "mlp": 90, "bnn": 83, "resnet50": 98, "lenet": 96,
                 "rf": 88},
    "hsj": {"scd01": 3.2, "scdce": 3.36, "scdcebnn": 3.6, "mlp": 0.77, "bnn": 0.76, "resnet50": 0.76, "lenet": 1.73,
            "rf": 1.91},
    "boundary": {"scd01": 7.69, "scdce": 8.23, "scdcebnn": None, "mlp": 2.47, "bnn": None, "resnet50": 3.44,
                 "lenet": 7.29, "rf": 6.63},
    "rays": {"scd01": 3.14, "scdce": 3.08, "scdcebnn": None, "mlp": 0.99, "bnn": None, "resnet50": None,
             "lenet": 2.54, "rf": 6.77},
}

# Table 3: mean minimum L2 of the first 100 CIFAR-10 0 vs 1 test images, HopSkipJump with 10
# iterations from fixed starting images.
TABLE3 = {"hsj": {"scd01": 6.25, "mlp": 0.83, "lenet": 2.98, "rf": 4.64}}

# Table 4: minimum L2 of one random test image (HopSkipJump, the minimum of 10 runs).
TABLE4 = {
    "celeba": {"scd01": 8.77, "scdce": 8.6, "scdcebnn": 14.13, "mlp": 1.02, "bnn": 0.22, "resnet50": 1.68,
               "lenet": 3.3, "rf": 2.82},
    "gtsrb": {"scd01": 0.6, "scdce": 0.82, "scdcebnn": 1.24, "mlp": 0.62, "bnn": 0.87, "lenet": 0.33, "rf": 0.01},
    "imagenet": {"scd01": 20.9, "scdce": 16.17, "scdcebnn": 3.26, "mlp": 24.1, "bnn": 5.68, "resnet50": 2.01,
                 "rf": 5.78},
}

# Table 5: mean minimum L2 of one CIFAR-10 0 vs 1 test image against SCD01's hidden width.
TABLE5 = {"distortion": {4: 2.22, 16: 1.98, 20: 2.21, 32: 2.27, 64: 3.45}}

# Table 6: probability that an adversarial example of one member transfers to the other members
# of its 100-member ensemble (CIFAR-10 0 vs 1, images 0 to 7).
TABLE6 = {"prob": {"scd01": 0.006, "scdce": 0.004, "scdcebnn": 0.002, "mlp": 0.39, "bnn": 0.2, "resnet50": 0.02,
                   "lenet": 0.01, "rf": 0.07}}

# Table 7: TextFooler on 8-vote ensembles: clean accuracy (%), adversarial accuracy (%) and
# the attacker's queries, per dataset.
_TABLE7_ROWS = {  # as printed, per model: Cl, Adv and Que on IMDB, then on Yelp, MR and AG
    "scd01": (82, 51, 3279, 85, 54, 1908, 74, 14, 186, 99, 93, 672),
    "scdce": (84.8, 52.4, 3255, 86, 56.7, 1903, 75.8, 16.7, 189, 99, 94.5, 687),
    "cnn": (89.2, 0, 524, 94, 1.1, 492, 78, 2.8, 123, 96.5, 49.1, 258),
    "mlp": (85, 0, 686, 87.3, 0.2, 500, 75, 2.3, 123, 99, 51.4, 366),
    "bnn": (83.8, 21.5, 2301, 85, 32.3, 1622, 73.2, 5.8, 150, 99.1, 75.6, 564),
    "rf": (76.7, 11, 1823, 77.7, 7.5, 935, 68.1, 2.1, 115, 96.7, 72.2, 532),
}
TABLE7 = {dataset: {measure: {model: row[3 * i + j] for model, row in _TABLE7_ROWS.items()}
                    for j, measure in enumerate(("cl", "adv", "que"))}
          for i, dataset in enumerate(("imdb", "yelp", "mr", "ag"))}

# Table 8: PTB diagnostic ECG, clean test accuracy (%) and the mean minimum L2 of 37 random
# test points (the minimum of 10 runs per point).
TABLE8 = {
    "accuracy": {"scd01": 91.1, "scdce": 93.3, "mlp": 96.1, "bnn": 80.4, "cnn": 99.6, "rf": 97.6},
    "distortion": {"scd01": 0.19, "scdce": 0.14, "mlp": 0.08, "bnn": 0.14, "cnn": 0.1, "rf": 0.14},
}

# Figure 1 (no figures in the text, only its claim): minimum L2 against ensemble size.
FIGURE1 = "SCD01's distortion grows with k much more than MLP's or RF's (Figure 1)"

# Figure 2's caption: target accuracy (%) under the substitute-model attack at L-inf distortion 0.125.
FIGURE2 = {"eps": 0.125, "accuracy": {"mlp": 0, "bnn": 0, "scd01": 40}}

# Per model on CIFAR-10 0 vs 1, the figures the evaluation reports put next to ours: the clean
# accuracy and HopSkipJump mean minimum L2 of Table 2 and the transfer probability of Table 6.
# Our ``cnn`` baseline is the paper's LeNet.
CIFAR = {name: {"accuracy": TABLE2["accuracy"][name], "hsj_l2": TABLE2["hsj"][name],
                "transfer": TABLE6["prob"][name]} for name in TABLE2["accuracy"]}
CIFAR["cnn"] = CIFAR["lenet"]
