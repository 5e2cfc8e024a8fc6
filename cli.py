"""The ``scd`` command line: parsing and dispatch only (heavy imports happen inside commands)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import click

from eval.datasets import DATASETS  # the registry alone: no loader, numpy or torch


def _data_options(f):
    """Options that choose a dataset, shared by the commands that read one."""
    f = click.option("--data", "data", type=click.Choice(DATASETS), default="digits", show_default=True,
                     help="Dataset (digits ships with scikit-learn; see README for the others).")(f)
    f = click.option("--classes", default=None, metavar="A B ...|all", callback=_parse_classes,
                     help="Original class ids to keep: two (binary), more, or 'all' (one-vs-rest ensembles, one "
                          "per class); label i is the i-th class given [default: the dataset's pair].")(f)
    f = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Where dataset files are looked for / downloaded (default: $SCD_DATA_DIR, else "
                          "$XDG_CACHE_HOME/scd/data, else ~/.cache/scd/data).")(f)
    f = click.option("--path", "data_path", type=click.Path(dir_okay=False), default=None,
                     help="Your own .npz or .csv file (with --data npz|csv).")(f)
    return f


_CLASS_VALUE = re.compile(r"-?\d+|all")


def _join_classes(args: list[str]) -> list[str]:
    """``args`` with the values after each ``--classes`` (integers, or ``all``) joined into one
    comma-separated value, so that ``--classes 0 1 2`` reaches click as ``--classes 0,1,2``."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        i += 1
        if arg == "--":
            return out + args[i:]
        if arg == "--classes":
            values = []
            while i < len(args) and _CLASS_VALUE.fullmatch(args[i]):
                values.append(args[i])
                i += 1
            if values:
                out.append(",".join(values))
    return out


def _parse_classes(ctx, param, value):
    """``--classes`` as a tuple of at least two distinct ints, or ``"all"`` (checked here, once)."""
    if value is None:
        return None
    from eval.datasets import check_classes

    try:
        return check_classes(value if value == "all" else [int(v) for v in value.split(",")])
    except ValueError:
        raise click.BadParameter(f"expected two or more distinct integers or 'all', got {value!r}") from None


def _load(data, classes, data_dir, data_path, embedding=None):
    from eval.datasets import TEXT_DATASETS, load_dataset

    if embedding is not None and data not in TEXT_DATASETS:
        raise click.UsageError(f"--embedding is for text data ({', '.join(TEXT_DATASETS)}), not {data}.")
    return load_dataset(data, classes=classes, data_dir=data_dir, path=data_path, embedding=embedding)


class _Commands(click.Group):
    """Bad input (``ValueError``, ``FileNotFoundError``) ends any command with ``Error: ...``
    and exit status 1, not a traceback."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, _join_classes(args))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="scd")
def main():
    """Train sign-activation SCD ensembles and measure how hard they are to attack."""


_MODELS = ("scd", "mlp", "bnn", "rf", "cnn", "wordcnn")
_SCD_VARIANTS = {("01", False): "SCD01", ("ce", False): "SCDCE", ("01", True): "SCD01BNN", ("ce", True): "SCDCEBNN"}


@main.command()
@click.option("--model", "kind", type=click.Choice(_MODELS), default="scd", show_default=True,
              help="scd, or a baseline: mlp (scikit-learn MLPs), bnn (larq), rf (random forest), cnn (torch), "
                   "wordcnn (Kim's CNN over stacked word vectors; text data only).")
@click.option("--loss", type=click.Choice(["01", "ce"]), default="01", show_default=True,
              help="SCD output loss: 0-1 (SCD01) or cross-entropy (SCDCE).")
@click.option("--binary-weights", is_flag=True, help="SCD with binary (+-1) weights: SCD01BNN / SCDCEBNN.")
@click.option("--votes", type=click.IntRange(min=1), default=None,
              help="Members of the ensemble (trees for rf) [default: 100, or 10 for cnn, 8 for wordcnn].")
@click.option("--hidden", type=click.IntRange(min=1), default=20, show_default=True,
              help="Hidden units (scd, mlp, bnn).")
@click.option("--iters", type=click.IntRange(min=1), default=None,
              help="SCD iterations per vote [default: 1000, or 10000 with --binary-weights].")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Epochs (bnn, cnn, wordcnn) [default: 20, or 10 for wordcnn].")
@click.option("--nrows", type=click.FloatRange(0, 1, min_open=True), default=0.75, show_default=True)
@click.option("--updated-features", type=click.IntRange(min=1), default=128, show_default=True)
@_data_options
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (scd, cnn).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", type=int, default=-1, show_default=True,
              help="CPU worker processes training vote groups (-1: one per core; scd, mlp, rf).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Save the model here (.scd).")
@click.option("--resume", is_flag=True, help="SCD: continue from the checkpoint of an interrupted run with the same --out.")
@click.option("--backend", type=click.Choice(["loky", "dask", "ray"]), default="loky", show_default=True,
              help="Where the CPU workers of --jobs run (scd, mlp, rf): local processes, a dask cluster or ray.")
@click.option("--scheduler", default=None, help="dask: address of an existing scheduler (default: a local cluster).")
@click.option("--ray-address", default=None, help="ray: address of an existing cluster (default: a local one).")
@click.option("--max-memory", type=click.FloatRange(min=0, min_open=True), default=None,
              help="scd: GiB the training may plan to use (default: this machine's memory); its estimate is checked "
                   "before training starts.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--embedding", default=None, metavar="PATH",
              help="Text data: a GloVe/word2vec text file of word vectors (default: GloVe 6B 50-d, the text extra).")
def train(kind, loss, binary_weights, votes, hidden, iters, epochs, nrows, updated_features, data, classes,
          data_dir, data_path, device, seed, jobs, out, resume, backend, scheduler, ray_address, max_memory, quiet,
          embedding=None):
    """Train an SCD ensemble or a baseline and print its train/test accuracy and training time."""
    if resume and (out is None or kind != "scd"):
        raise click.UsageError("--resume needs --out and --model scd (the checkpoint is OUT.ckpt).")
    if out is not None and os.path.isdir(out):
        raise click.BadParameter(f"{out!r} is a directory; give a file path.", param_hint="--out")
    model, name = _build_model(kind, loss, binary_weights, votes, hidden, iters, epochs, nrows, updated_features,
                               device, seed, jobs, quiet, max_memory)
    ds = _load(data, classes, data_dir, data_path, embedding)
    if kind == "wordcnn":  # the stacked word vectors of the documents, not their average
        if not hasattr(ds, "word_matrices"):
            raise click.UsageError(f"wordcnn reads documents; {data} is not text data.")
        ds = ds.word_matrices()
        model.set_params(input_shape=ds.input_shape)
    size = f"{model.n_votes} members" + (f" x {model.n_iters} iterations" if kind == "scd" else "")
    members = model.n_votes
    if len(ds.classes) > 2:
        if resume:
            raise click.UsageError("--resume continues a binary SCD training; a one-vs-rest model (more than two "
                                   "classes) has no checkpoint.")
        from scd import OneVsRest

        model, name, members = OneVsRest(model), f"one-vs-rest {name}", members * len(ds.classes)
        size = f"{len(ds.classes)} classes x {size}"
    click.echo(f"{name}: {size}, on {ds.name} {ds.classes} ({len(ds.x_train)} train / {len(ds.x_test)} test, "
               f"{ds.x_train.shape[1]} features)", err=True)
    from eval.backends import parallel_backend

    try:
        with parallel_backend(backend, n_jobs=None if jobs == -1 else jobs, scheduler=scheduler,
                              ray_address=ray_address):
            if out:
                from scd.persist import fit_and_save

                fit_and_save(model, ds.x_train, ds.y_train, out, resume=resume)
            else:
                model.fit(ds.x_train, ds.y_train)
    except KeyboardInterrupt:
        from scd.persist import checkpoint_path

        saved = out and kind == "scd" and os.path.exists(checkpoint_path(out))  # something to resume
        hint = f" Resume with: --out {out} --resume" if saved else " Nothing was saved yet."
        click.echo(f"\ninterrupted.{hint}", err=True)
        sys.exit(130)
    train_acc, test_acc = model.score(ds.x_train, ds.y_train), model.score(ds.x_test, ds.y_test)
    click.echo(f"train accuracy  {train_acc:.4f}")
    click.echo(f"test accuracy   {test_acc:.4f}")
    click.echo(f"training time   {model.fit_time_:.1f} s ({model.fit_time_ / members:.2f} s per member)")
    if out:
        click.echo(f"saved to {out}")


def _build_model(kind, loss, binary_weights, votes, hidden, iters, epochs, nrows, updated_features, device, seed,
                 jobs, quiet, max_memory=None):
    """The unfitted estimator that ``scd train`` options describe, and its display name."""
    verbose = 0 if quiet else 1
    if kind == "scd":
        from scd import SCDClassifier

        model = SCDClassifier(
            loss=loss, binary_weights=binary_weights, n_votes=votes or 100, hidden_nodes=hidden,
            n_iters=iters or (10000 if binary_weights else 1000), nrows=nrows,
            updated_features=updated_features, random_state=seed, device=device, n_jobs=jobs,
            verbose=verbose, max_memory=None if max_memory is None else max_memory * 2**30,
        )
        return model, _SCD_VARIANTS[loss, binary_weights]
    from eval import baselines

    if kind == "mlp":
        model = baselines.MLPEnsemble(n_votes=votes or 100, hidden_layer_sizes=(hidden,), random_state=seed,
                                      n_jobs=jobs)
    elif kind == "rf":
        model = baselines.RandomForestEnsemble(n_votes=votes or 100, random_state=seed, n_jobs=jobs)
    elif kind == "bnn":
        model = baselines.BNNEnsemble(n_votes=votes or 100, hidden_nodes=hidden, epochs=epochs or 20,
                                      random_state=seed, verbose=verbose)
    elif kind == "wordcnn":
        model = baselines.WordCNNEnsemble(n_votes=votes or 8, epochs=epochs or 10, random_state=seed, device=device,
                                          verbose=verbose)
    else:
        model = baselines.CNNEnsemble(n_votes=votes or 10, epochs=epochs or 20, random_state=seed, device=device,
                                      verbose=verbose)
    return model, type(model).__name__


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@_data_options
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--member", type=int, default=None, help="Predict with this single member only.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write predictions as CSV.")
def predict(model_path, data, classes, data_dir, data_path, split, member, out):
    """Predict a dataset split with a saved model and print its accuracy and warm throughput."""
    import numpy as np

    from eval.baselines import load_model
    from eval.io import atomic_open
    from eval.points import check_classes_match

    model = load_model(model_path)
    ds = _load(data, classes, data_dir, data_path)
    check_classes_match(model, ds)
    X, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    times = []
    for _ in range(2):  # the first pass pays the one-off costs: lazy imports, caches, kernel selection
        start = time.perf_counter()
        pred = model.predict(X, member=member)
        times.append(time.perf_counter() - start)
    click.echo(f"{split} accuracy {np.mean(pred == y):.4f} on {len(y)} samples "
               f"({len(y) / max(times[1], 1e-9):.0f} samples/s warm: the second of two passes; the first took "
               f"{times[0]:.2f} s)")
    if out:
        proba = model.predict_proba(X, member=member)
        names = model.classes_.tolist()
        if len(names) == 2:  # binary: the probability of classes_[1]
            proba, names = proba[:, 1:], names[1:]
        with atomic_open(out, "w") as fh:
            fh.write(",".join(["index", "label", "prediction", *(f"proba_{c}" for c in names)]) + "\n")
            for i, (t, p, q) in enumerate(zip(y, pred, proba)):
                fh.write(",".join([str(i), str(t), str(p), *(f"{v:.6f}" for v in q)]) + "\n")
        click.echo(f"predictions written to {out}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
def info(model_path):
    """Show what a saved model is: kind, parameters, shapes, seed."""
    from eval.baselines import model_info

    click.echo(json.dumps(model_info(model_path), indent=2, sort_keys=True))

@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--method", type=click.Choice(["hsj", "boundary", "rays", "zoo", "ead", "cw", "fgsm", "pgd", "structure",
                                             "substitute"]),
              default="hsj", show_default=True,
              help="Decision-based: hsj (L2/Linf), boundary (L2), rays (Linf). Scores: zoo (L2). Gradients: ead "
                   "(L1), cw (L2), fgsm (Linf), pgd (Linf/L2/L1). structure: white-box, from an SCD ensemble's "
                   "weights (Linf/L2/L1). substitute: the transfer curve of a substitute model (FGSM at each --eps, "
                   "with a Gaussian-noise control).")
@_data_options
@click.option("--n-samples", type=click.IntRange(min=1), default=10, show_default=True,
              help="Attack the first N test points the model classifies correctly.")
@click.option("--indices", default=None, help="Comma-separated test indices to attack instead.")
@click.option("--norm", type=click.Choice(["1", "2", "inf"]), default=None,
              help="hsj: 2 (default) or inf; pgd: inf (default), 2 or 1; the other methods have one norm.")
@click.option("--max-queries", type=click.IntRange(min=1), default=None,
              help="Per-sample budget of model queries (rays: its query limit, default 10000).")
@click.option("--iters", type=click.IntRange(min=0), default=None,
              help="hsj iterations (default 40), boundary steps (25000), pgd steps (40), or zoo/ead/cw iterations "
                   "per binary-search step.")
@click.option("--init-size", type=click.IntRange(min=1), default=None,
              help="Random draws per sample to find a starting point (default 100).")
@click.option("--theta", default=None, help="hsj binary-search tolerance: paper (default), art, or a number.")
@click.option("--target", type=int, default=None, help="Targeted attack towards this model label.")
@click.option("--start", type=click.Choice(["uniform", "nearest"]), default="uniform", show_default=True,
              help="hsj, boundary: start from uniform noise, or from the nearest training image of another class "
                   "(the target class with --target); uniform noise is the fallback.")
@click.option("--eps", default=None,
              help="fgsm/pgd: the budget in the attack's norm (default 0.3), or comma-separated budgets: one run "
                   "per budget and the robust-accuracy curve; the other attacks (not structure): comma-separated "
                   "distances at which to read the robust-accuracy curve off their distances; substitute: "
                   "comma-separated Linf budgets (default 0,0.015625,0.03125,0.0625,0.125,0.25).")
@click.option("--surrogate", type=click.Choice(["smooth", "substitute"]), default=None,
              help="Gradient source for fgsm/pgd/ead/cw when the model has none: smooth (SCD weights, sign relaxed "
                   "to tanh: a white-box adaptive attack; the default for SCD ensembles) or substitute (an MLP "
                   "trained on the model's labels; forests need it). Labels and the final check always come from "
                   "the real model.")
@click.option("--seed-size", type=click.IntRange(min=2), default=200, show_default=True,
              help="substitute: test points (not attacked) whose labels seed the substitute's training.")
@click.option("--substitute-rounds", type=click.IntRange(min=1), default=20, show_default=True,
              help="substitute: Jacobian-augmentation rounds.")
@click.option("--substitute-epochs", type=click.IntRange(min=1), default=20, show_default=True,
              help="substitute: training epochs per round.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Most rows per model call.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the JSON record here.")
@click.option("--save-examples", type=click.Path(dir_okay=False), default=None,
              help="Write originals and adversarial examples here (.npz).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def attack(model_path, method, data, classes, data_dir, data_path, n_samples, indices, norm, max_queries, iters,
           init_size, theta, target, start, eps, surrogate, seed_size, substitute_rounds, substitute_epochs, seed,
           batch_size, out, save_examples, quiet):
    """Attack a saved model (or any classifier as a .onnx file, run by onnxruntime); print a table,
    optionally write JSON and the examples.

    Successes are always judged by re-querying the real model on the final, clipped example.
    """
    from attacks import AttackSpec
    from eval.attack_run import AttackConfig, main as run_attack

    if indices is not None:
        try:
            indices = tuple(int(i) for i in indices.split(","))
        except ValueError:
            raise click.BadParameter(f"expected comma-separated integers, got {indices!r}", param_hint="--indices")
    if eps is not None:
        try:
            eps = tuple(float(e) for e in eps.split(","))
        except ValueError:
            raise click.BadParameter(f"expected comma-separated numbers, got {eps!r}", param_hint="--eps")
    curve = method == "substitute"  # the substitute transfer curve, not one attack
    spec = None if curve else AttackSpec(method=method, norm=norm, iters=iters, init_size=init_size, theta=theta,
                                         max_queries=max_queries, eps=eps)
    config = AttackConfig(model_path=model_path, attack=spec, data=data, classes=classes,
                          data_dir=data_dir, data_path=data_path, n_samples=n_samples, indices=indices, target=target,
                          start=start, surrogate=surrogate, seed_size=seed_size, substitute_rounds=substitute_rounds,
                          substitute_epochs=substitute_epochs, substitute_eps=eps if curve else None, seed=seed,
                          batch_size=batch_size, out=out, save_examples=save_examples, quiet=quiet)
    run_attack(config)
    for path, what in ((out, "record"), (save_examples, "examples")):
        if path:
            click.echo(f"{what} written to {path}", err=True)


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@_data_options
@click.option("--norm", type=click.Choice(["inf", "2", "1"]), default="inf", show_default=True)
@click.option("--n-samples", type=click.IntRange(min=1), default=10, show_default=True,
              help="Bound the first N test points the model classifies correctly.")
@click.option("--indices", default=None, help="Comma-separated test indices instead (misclassified ones get 0).")
@click.option("--time-limit", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds of exact search per point after the certificate (SCD: branch and bound; rf: "
                   "MILP); 0: certificate only (mlp, cnn: no attack either).")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="JSON result; the run's records are kept in OUT.run/ so that a rerun resumes.")
@click.option("--save-examples", type=click.Path(dir_okay=False), default=None,
              help="Write the closest confirmed examples here (.npz).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def certify(model_path, data, classes, data_dir, data_path, norm, n_samples, indices, time_limit, out,
            save_examples, quiet):
    """Certified intervals [lower, upper] of the minimum distortion of a model.

    SCD ensembles, random forests (exact MILP), MLP ensembles (bound propagation) and CNNs
    (interval propagation); docs/certify.md and docs/certify_baselines.md.
    lower: no input closer than it changes the prediction (sound under floating point);
    upper: the closest input found that the model confirms it classifies differently.
    """
    from eval.baselines import load_model
    from eval.certify import certify_run, table

    picked = None if indices is None else _int_list(indices, "--indices")
    model = load_model(model_path)
    ds = _load(data, classes, data_dir, data_path)
    settings = {"model": os.path.abspath(model_path), "data": data,
                "classes": [getattr(c, "item", lambda c=c: c)() for c in ds.classes],
                "data_path": data_path}
    payload = certify_run(model, ds.x_test, ds.y_test, norm=norm, n_samples=n_samples, indices=picked,
                          time_limit=time_limit, out=out, settings=settings, save_examples=save_examples,
                          quiet=quiet)
    click.echo(table(payload))
    click.echo(f"record written to {out}", err=True)


# ------------------------------------------------------------------------------- scd eval
@main.group(name="eval")
def eval_group():
    """The paper's measurements: resumable runs with JSON, Markdown tables and plots.

    Each command writes into --out RUN_DIR: config.json, records.jsonl (one line per finished
    unit; a restarted command with the same settings skips those), results.json, report.md
    and PNG plots.  --backend dask|ray spreads the units over a cluster.
    """


def _eval_common(f):
    f = click.option("--quiet", is_flag=True, help="No progress bar.")(f)
    f = click.option("--ray-address", default=None, help="ray: address of an existing cluster (default: a local one).")(f)
    f = click.option("--scheduler", default=None,
                     help="dask: address of an existing scheduler (default: a local cluster on 127.0.0.1).")(f)
    f = click.option("--jobs", type=int, default=None, help="Parallel units (default: one per core, or per worker).")(f)
    f = click.option("--backend", type=click.Choice(["loky", "sequential", "dask", "ray"]), default="loky",
                     show_default=True, help="Where the units run.")(f)
    f = click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the point selection and of run r's attack (seed + r).")(f)
    f = click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory.")(f)
    f = _data_options(f)
    return f


def _eval_models(f):
    return click.option("--model", "models", multiple=True, required=True, metavar="NAME=PATH",
                        help="A saved model (repeat for each; NAME defaults to the file name).")(f)


def _eval_attack(f):
    f = click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True,
                     help="Most rows per model call.")(f)
    f = click.option("--chunk", type=click.IntRange(min=1), default=5, show_default=True,
                     help="Test points per work unit (results do not depend on it).")(f)
    f = click.option("--start", type=click.Choice(["uniform", "nearest"]), default="uniform", show_default=True,
                     help="Start from uniform noise, or from the nearest training image of another class.")(f)
    f = click.option("--max-queries", type=click.IntRange(min=1), default=None, help="Per-sample query budget.")(f)
    f = click.option("--theta", default=None, help="hsj binary-search tolerance: paper (default), art or a number.")(f)
    f = click.option("--init-size", type=click.IntRange(min=1), default=None,
                     help="Random draws per sample for a starting point (paper: 1000).")(f)
    f = click.option("--iters", type=click.IntRange(min=0), default=None,
                     help="hsj iterations (paper: 100), boundary steps.")(f)
    f = click.option("--norm", type=click.Choice(["2", "inf"]), default=None, help="hsj: 2 (default) or inf.")(f)
    f = click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Attacks per image with seeds seed..seed+runs-1; the minimum distortion is kept.")(f)
    f = click.option("--indices", default=None,
                     help="Comma-separated test indices to attack instead of --n drawn points (e.g. another "
                          "run's points, config.json's \"points\").")(f)
    f = click.option("--n", "n_points", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Test points, drawn with --seed among those every model classifies correctly.")(f)
    f = click.option("--method", type=click.Choice(["hsj", "boundary", "rays", "structure"]), default="hsj",
                     show_default=True,
                     help="structure: the white-box structure attack (SCD ensembles only).")(f)
    return f


def _attack_options(method, norm, iters, init_size, theta, max_queries, n_points, indices, runs, start, chunk,
                    batch_size, seed):
    """The settings of an attack run; the attack's spec is built and checked here, before any work."""
    from attacks import AttackSpec

    spec = AttackSpec(method=method, norm=norm, iters=iters, init_size=init_size, theta=theta,
                      max_queries=max_queries)
    spec.validate()
    if start == "nearest" and not spec.uses_starting_points:
        raise click.UsageError(f"{method} takes no starting points; drop --start nearest.")
    options = {"attack": spec, "n": n_points, "runs": runs, "start": start, "chunk": chunk, "batch_size": batch_size,
               "seed": seed}
    if indices is not None:
        options["indices"] = _int_list(indices, "--indices")
        options["n"] = len(options["indices"])
    return options


def _run_eval(kind, models, options, data, classes, data_dir, data_path, out, backend, jobs, scheduler, ray_address,
              quiet):
    from eval.suite import evaluate, parse_models

    spec = {"name": data, "classes": list(classes) if isinstance(classes, tuple) else classes, "data_dir": data_dir,
            "path": data_path}
    try:
        results = evaluate(kind, parse_models(models) if models else None, spec, out, options=options,
                           backend=backend, n_jobs=jobs, scheduler=scheduler, ray_address=ray_address, quiet=quiet)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the finished units are kept: rerun the same command to resume into {out}.",
                   err=True)
        sys.exit(130)
    click.echo(Path(out, "report.md").read_text())
    return results


@eval_group.command(name="accuracy")
@_eval_models
@_eval_common
def eval_accuracy(models, data, classes, data_dir, data_path, out, seed, backend, jobs, scheduler, ray_address, quiet):
    """Clean train/test accuracy, training time and prediction throughput (paper Table 1)."""
    _run_eval("accuracy", models, {"seed": seed}, data, classes, data_dir, data_path, out, backend, jobs, scheduler,
              ray_address, quiet)


@eval_group.command(name="distortion")
@_eval_models
@_eval_attack
@_eval_common
def eval_distortion(models, method, n_points, indices, runs, norm, iters, init_size, theta, max_queries, start, chunk,
                    batch_size, data, classes, data_dir, data_path, out, seed, backend, jobs, scheduler, ray_address,
                    quiet):
    """Minimum adversarial distortion per model, with confidence intervals, paired tests and the
    cross-model transfer matrix (paper Tables 2 to 4, 8)."""
    options = _attack_options(method, norm, iters, init_size, theta, max_queries, n_points, indices, runs, start, chunk,
                              batch_size, seed)
    _run_eval("distortion", models, options, data, classes, data_dir, data_path, out, backend, jobs, scheduler,
              ray_address, quiet)


@eval_group.command(name="transfer")
@_eval_models
@_eval_attack
@click.option("--members", default=None, help="Comma-separated member indices to attack (default: all).")
@_eval_common
def eval_transfer(models, method, n_points, indices, runs, norm, iters, init_size, theta, max_queries, start, chunk, batch_size,
                  members, data, classes, data_dir, data_path, out, seed, backend, jobs, scheduler, ray_address, quiet):
    """Transfer probability inside each ensemble: attack each member alone, count the others it
    fools (paper Table 6)."""
    if runs != 1 or start != "uniform":
        raise click.UsageError("transfer attacks each member once from uniform noise; drop --runs/--start.")
    options = _attack_options(method, norm, iters, init_size, theta, max_queries, n_points, indices, runs, start, chunk,
                              batch_size, seed)
    options["members"] = _int_list(members, "--members")
    _run_eval("transfer", models, options, data, classes, data_dir, data_path, out, backend, jobs, scheduler,
              ray_address, quiet)


@eval_group.command(name="size")
@_eval_models
@_eval_attack
@click.option("--sizes", default="1,5,10,25,50,100", show_default=True,
              help="Comma-separated ensemble sizes k (the first k members); sizes above a model's are skipped.")
@_eval_common
def eval_size(models, method, n_points, indices, runs, norm, iters, init_size, theta, max_queries, start, chunk, batch_size,
              sizes, data, classes, data_dir, data_path, out, seed, backend, jobs, scheduler, ray_address, quiet):
    """Minimum distortion of the ensembles of the first k members, for k in --sizes (paper Figure 1)."""
    options = _attack_options(method, norm, iters, init_size, theta, max_queries, n_points, indices, runs, start, chunk,
                              batch_size, seed)
    options["sizes"] = _int_list(sizes, "--sizes")
    _run_eval("size", models, options, data, classes, data_dir, data_path, out, backend, jobs, scheduler, ray_address,
              quiet)


@eval_group.command(name="width")
@click.option("--hidden", default="4,16,20,32,64", show_default=True, help="Comma-separated hidden widths to train.")
@click.option("--loss", type=click.Choice(["01", "ce"]), default="01", show_default=True)
@click.option("--votes", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--train-iters", type=click.IntRange(min=1), default=1000, show_default=True,
              help="SCD iterations per vote.")
@click.option("--train-jobs", type=int, default=-1, show_default=True,
              help="Worker processes training vote groups (under --backend dask|ray they go to the cluster).")
@_eval_attack
@_eval_common
def eval_width(hidden, loss, votes, train_iters, train_jobs, method, n_points, indices, runs, norm, iters, init_size, theta,
               max_queries, start, chunk, batch_size, data, classes, data_dir, data_path, out, seed, backend, jobs,
               scheduler, ray_address, quiet):
    """Train SCD ensembles of several hidden widths into RUN_DIR/models, then measure their minimum
    distortion (paper Table 5)."""
    options = _attack_options(method, norm, iters, init_size, theta, max_queries, n_points, indices, runs, start, chunk,
                              batch_size, seed)
    options["width"] = {"hidden": _int_list(hidden, "--hidden"), "loss": loss, "votes": votes, "iters": train_iters,
                        "jobs": train_jobs}
    _run_eval("width", (), options, data, classes, data_dir, data_path, out, backend, jobs, scheduler, ray_address,
              quiet)


@eval_group.command(name="substitute")
@_eval_models
@click.option("--n", "n_points", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Test points attacked (drawn among those every model classifies correctly).")
@click.option("--eps", default="0,0.015625,0.03125,0.0625,0.125,0.25", show_default=True,
              help="Comma-separated L-inf budgets.")
@click.option("--seeds", default="2019,2393,92382", show_default=True,
              help="Substitute seeds (one substitute per seed; the curve is their mean).")
@click.option("--seed-size", type=click.IntRange(min=2), default=200, show_default=True,
              help="Other test points whose labels seed the substitute.")
@click.option("--rounds", type=click.IntRange(min=1), default=20, show_default=True,
              help="Jacobian-augmentation rounds.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Epochs per round.")
@_eval_common
def eval_substitute(models, n_points, eps, seeds, seed_size, rounds, epochs, data, classes, data_dir, data_path, out,
                    seed, backend, jobs, scheduler, ray_address, quiet):
    """Substitute-model transfer curve with the Gaussian-noise control (paper Figure 2)."""
    try:
        budgets = [float(e) for e in eps.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {eps!r}", param_hint="--eps")
    options = {"n": n_points, "seed": seed, "substitute": {"eps": budgets, "seeds": _int_list(seeds, "--seeds"),
                                                           "seed_size": seed_size, "rounds": rounds, "epochs": epochs}}
    _run_eval("substitute", models, options, data, classes, data_dir, data_path, out, backend, jobs, scheduler,
              ray_address, quiet)


@eval_group.command(name="text")
@_eval_models
@click.option("--n", "n_points", type=click.IntRange(min=1), default=100, show_default=True,
              help="Test documents attacked, drawn with --seed (adversarial accuracy is over all of them).")
@click.option("--k", type=click.IntRange(min=1), default=50, show_default=True, help="Most synonym candidates per word.")
@click.option("--min-cosine", type=click.FloatRange(-1, 1), default=0.5, show_default=True,
              help="Least cosine between a word and a candidate.")
@click.option("--vocabulary", type=click.IntRange(min=1), default=50000, show_default=True,
              help="Candidates among the synonym embedding's first N (most frequent) words.")
@click.option("--min-similarity", type=float, default=0.84, show_default=True,
              help="Least sentence similarity (cosine of averaged synonym vectors) to the original.")
@click.option("--max-queries", type=click.IntRange(min=1), default=None, help="Per-document query budget.")
@click.option("--synonyms", default=None, metavar="PATH",
              help="Word vectors for synonym candidates, e.g. counter-fitted vectors (default: GloVe 6B 50-d).")
@click.option("--embedding", default=None, metavar="PATH",
              help="The word vectors the models were trained on (default: GloVe 6B 50-d).")
@click.option("--chunk", type=click.IntRange(min=1), default=10, show_default=True,
              help="Documents per work unit (results do not depend on it).")
@_eval_common
def eval_text(models, n_points, k, min_cosine, vocabulary, min_similarity, max_queries, synonyms, embedding, chunk,
              data, classes, data_dir, data_path, out, seed, backend, jobs, scheduler, ray_address, quiet):
    """TextFooler word substitutions on text data: clean accuracy, adversarial accuracy and mean
    queries per model (paper Table 7)."""
    from eval.suite import parse_models
    from eval.text_eval import evaluate_text

    options = {"n": n_points, "seed": seed, "chunk": chunk,
               "attack": {"k": k, "min_cosine": min_cosine, "vocabulary": vocabulary, "min_similarity": min_similarity,
                          "max_queries": max_queries, "synonyms": None if synonyms is None else os.path.abspath(synonyms)}}
    spec = {"name": data, "classes": list(classes) if classes else None, "data_dir": data_dir,
            "embedding": None if embedding is None else os.path.abspath(embedding)}
    try:
        evaluate_text(parse_models(models), spec, out, options=options, backend=backend, n_jobs=jobs,
                      scheduler=scheduler, ray_address=ray_address, quiet=quiet)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the finished units are kept: rerun the same command to resume into {out}.",
                   err=True)
        sys.exit(130)
    click.echo(Path(out, "report.md").read_text())


@eval_group.command(name="intervals")
@click.argument("run_dirs", metavar="RUN_DIR [RUN_DIR ...]", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False))
@click.option("--time-limit", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds of exact search per model and image after the certificate (as scd certify).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def eval_intervals(run_dirs, time_limit, quiet):
    """Certified intervals [lower, upper] of every distortion of a distortion run, in its norm.

    The first RUN_DIR is a distortion run; further ones are runs of other attacks on the same
    models, data and points, whose examples tighten the upper bounds.  Kept in
    RUN_DIR/intervals (a rerun resumes); report.md gets the interval tables and
    certified_accuracy.png; docs/intervals.md.
    """
    from eval.intervals import run_intervals

    try:
        run_intervals(run_dirs, time_limit=time_limit, quiet=quiet)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the finished points are kept: rerun the same command to resume into "
                   f"{Path(run_dirs[0], 'intervals')}.", err=True)
        sys.exit(130)
    click.echo(Path(run_dirs[0], "report.md").read_text())


@eval_group.command(name="report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def eval_report(run_dir):
    """Rebuild results.json, report.md and the plots of RUN_DIR (examples_<id>.png included) from
    its records, without attacking anything again."""
    from eval.runstore import RunStore
    from eval.suite import finish

    finish(RunStore(run_dir))
    click.echo(Path(run_dir, "report.md").read_text())


@eval_group.command(name="checklist")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--subset", type=click.IntRange(min=1), default=None,
              help="Points the stronger attack reruns: the run's first K [default: min(5, n)].")
@click.option("--backend", type=click.Choice(["loky", "sequential", "dask", "ray"]), default="loky",
              show_default=True, help="Where the units run.")
@click.option("--jobs", type=int, default=None, help="Parallel units (default: one per core, or per worker).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def eval_checklist(run_dir, subset, backend, jobs, quiet):
    """The evaluation checklist of a finished distortion run (Carlini et al. 2019): a stronger
    attack on a subset, success against epsilon, and a random-noise baseline; flags each model
    that fails one.  Writes RUN_DIR/checklist.json and checklist.png, adds a section to
    report.md, and keeps its own work in RUN_DIR/checklist/ (a rerun resumes)."""
    from eval.checklist import flag_lines, format_table, run_checklist

    try:
        checklist = run_checklist(run_dir, subset=subset, backend=backend, n_jobs=jobs, quiet=quiet)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the finished units are kept: rerun the same command to resume {run_dir}.",
                   err=True)
        sys.exit(130)
    click.echo("\n".join([*format_table(checklist), "", *flag_lines(checklist)]))
    click.echo(f"written to {Path(run_dir, 'checklist.json')} and {Path(run_dir, 'report.md')}", err=True)


@eval_group.command(name="timeseries")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--sample", "sample_id", type=int, required=True, help="Test index of an attacked point.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="PNG to write (default: RUN_DIR/examples_<sample>.png).")
def eval_timeseries(run_dir, sample_id, out_path):
    """Plot a test input and its closest adversarial versions against each model of a distortion
    run (paper Figure 3): curves for 1-D data such as ECG, images for image data."""
    from eval.suite import plot_example

    click.echo(f"written to {plot_example(run_dir, sample_id, out_path)}")


def _int_list(text, hint):
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=hint)
    if any(v < 0 for v in values):
        raise click.BadParameter(f"expected integers >= 0, got {text!r}", param_hint=hint)
    return values

if __name__ == "__main__":
    main()
