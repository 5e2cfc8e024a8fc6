"""The ``scd`` command line: parsing and dispatch only (heavy imports happen inside commands)."""

from __future__ import annotations

import json
import os
import sys
import time

import click

_DATASETS = ("digits", "cifar10", "mnist", "ecg", "npz", "csv")


def _data_options(f):
    """Options that choose a dataset, shared by the commands that read one."""
    f = click.option("--data", "data", type=click.Choice(_DATASETS), default="digits", show_default=True,
                     help="Dataset (digits ships with scikit-learn; see README for the others).")(f)
    f = click.option("--classes", nargs=2, type=int, default=None,
                     help="The two original class ids to keep (dataset default otherwise).")(f)
    f = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Where dataset files are looked for / downloaded (default: $SCD_DATA_DIR or ~/.cache/scd/data).")(f)
    f = click.option("--path", "data_path", type=click.Path(dir_okay=False), default=None,
                     help="Your own .npz or .csv file (with --data npz|csv).")(f)
    return f


def _load(data, classes, data_dir, data_path):
    from eval.datasets import load_dataset

    return load_dataset(data, classes=tuple(classes) if classes else None, data_dir=data_dir, path=data_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="scd")
def main():
    """Train sign-activation SCD ensembles and measure how hard they are to attack."""


_MODELS = ("scd", "mlp", "bnn", "rf", "cnn")
_SCD_VARIANTS = {("01", False): "SCD01", ("ce", False): "SCDCE", ("01", True): "SCD01BNN", ("ce", True): "SCDCEBNN"}


@main.command()
@click.option("--model", "kind", type=click.Choice(_MODELS), default="scd", show_default=True,
              help="scd, or a baseline: mlp (scikit-learn MLPs), bnn (larq), rf (random forest), cnn (torch).")
@click.option("--loss", type=click.Choice(["01", "ce"]), default="01", show_default=True,
              help="SCD output loss: 0-1 (SCD01) or cross-entropy (SCDCE).")
@click.option("--binary-weights", is_flag=True, help="SCD with binary (+-1) weights: SCD01BNN / SCDCEBNN.")
@click.option("--votes", type=click.IntRange(min=1), default=None,
              help="Members of the ensemble (trees for rf) [default: 100, or 10 for cnn].")
@click.option("--hidden", type=click.IntRange(min=1), default=20, show_default=True,
              help="Hidden units (scd, mlp, bnn).")
@click.option("--iters", type=click.IntRange(min=1), default=None,
              help="SCD iterations per vote [default: 1000, or 10000 with --binary-weights].")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Epochs (bnn, cnn).")
@click.option("--nrows", type=click.FloatRange(0, 1, min_open=True), default=0.75, show_default=True)
@click.option("--updated-features", type=click.IntRange(min=1), default=128, show_default=True)
@_data_options
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (scd, cnn).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", type=int, default=-1, show_default=True,
              help="CPU worker processes training vote groups (-1: one per core; scd, mlp, rf).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Save the model here (.scd).")
@click.option("--resume", is_flag=True, help="SCD: continue from the checkpoint of an interrupted run with the same --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(kind, loss, binary_weights, votes, hidden, iters, epochs, nrows, updated_features, data, classes,
          data_dir, data_path, device, seed, jobs, out, resume, quiet):
    """Train an SCD ensemble or a baseline and print its train/test accuracy and training time."""
    if resume and (out is None or kind != "scd"):
        raise click.UsageError("--resume needs --out and --model scd (the checkpoint is OUT.ckpt).")
    ds = _load(data, classes, data_dir, data_path)
    checkpoint = f"{out}.ckpt" if out and kind == "scd" else None
    if checkpoint and os.path.exists(checkpoint) and not resume:
        os.remove(checkpoint)
    model, name = _build_model(kind, loss, binary_weights, votes, hidden, iters, epochs, nrows, updated_features,
                               device, seed, jobs, checkpoint, quiet)
    size = f"{model.n_votes} members" + (f" x {model.n_iters} iterations" if kind == "scd" else "")
    click.echo(f"{name}: {size}, on {ds.name} {ds.classes} ({len(ds.x_train)} train / {len(ds.x_test)} test, "
               f"{ds.x_train.shape[1]} features)", err=True)
    try:
        model.fit(ds.x_train, ds.y_train, **({"resume": resume} if kind == "scd" else {}))
    except KeyboardInterrupt:
        hint = f" Resume with: --out {out} --resume" if checkpoint else ""
        click.echo(f"\ninterrupted.{hint}", err=True)
        sys.exit(130)
    train_acc, test_acc = model.score(ds.x_train, ds.y_train), model.score(ds.x_test, ds.y_test)
    click.echo(f"train accuracy  {train_acc:.4f}")
    click.echo(f"test accuracy   {test_acc:.4f}")
    click.echo(f"training time   {model.fit_time_:.1f} s ({model.fit_time_ / model.n_votes:.2f} s per member)")
    if out:
        model.save(out)
        if checkpoint and os.path.exists(checkpoint):
            os.remove(checkpoint)
        click.echo(f"saved to {out}")


def _build_model(kind, loss, binary_weights, votes, hidden, iters, epochs, nrows, updated_features, device, seed,
                 jobs, checkpoint, quiet):
    """The unfitted estimator that ``scd train`` options describe, and its display name."""
    verbose = 0 if quiet else 1
    if kind == "scd":
        from scd import SCDClassifier

        model = SCDClassifier(
            loss=loss, binary_weights=binary_weights, n_votes=votes or 100, hidden_nodes=hidden,
            n_iters=iters or (10000 if binary_weights else 1000), nrows=nrows,
            updated_features=updated_features, random_state=seed, device=device, n_jobs=jobs,
            checkpoint=checkpoint, verbose=verbose,
        )
        return model, _SCD_VARIANTS[loss, binary_weights]
    from eval import baselines

    if kind == "mlp":
        model = baselines.MLPEnsemble(n_votes=votes or 100, hidden_layer_sizes=(hidden,), random_state=seed,
                                      n_jobs=jobs)
    elif kind == "rf":
        model = baselines.RandomForestEnsemble(n_votes=votes or 100, random_state=seed, n_jobs=jobs)
    elif kind == "bnn":
        model = baselines.BNNEnsemble(n_votes=votes or 100, hidden_nodes=hidden, epochs=epochs, random_state=seed,
                                      verbose=verbose)
    else:
        model = baselines.CNNEnsemble(n_votes=votes or 10, epochs=epochs, random_state=seed, device=device,
                                      verbose=verbose)
    return model, type(model).__name__


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@_data_options
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--member", type=int, default=None, help="Predict with this single member only.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write predictions as CSV.")
def predict(model_path, data, classes, data_dir, data_path, split, member, out):
    """Predict a dataset split with a saved model and print its accuracy and throughput."""
    import numpy as np

    from eval.baselines import load_model
    from eval.io import atomic_open

    model = load_model(model_path)
    ds = _load(data, classes, data_dir, data_path)
    X, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    start = time.perf_counter()
    proba = model.predict_proba(X, member=member)[:, 1]
    elapsed = time.perf_counter() - start
    pred = model.classes_[(proba > 0.5).astype(int)]
    click.echo(f"{split} accuracy {np.mean(pred == y):.4f} on {len(y)} samples "
               f"({len(y) / max(elapsed, 1e-9):.0f} samples/s)")
    if out:
        with atomic_open(out, "w") as fh:
            fh.write("index,label,prediction,proba_1\n")
            for i, (t, p, q) in enumerate(zip(y, pred, proba)):
                fh.write(f"{i},{t},{p},{q:.6f}\n")
        click.echo(f"predictions written to {out}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
def info(model_path):
    """Show what a saved model is: kind, parameters, shapes, seed."""
    from eval.baselines import model_info

    click.echo(json.dumps(model_info(model_path), indent=2, sort_keys=True))

@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--method", type=click.Choice(["hsj", "boundary", "rays", "zoo", "ead", "cw", "fgsm", "pgd", "substitute"]),
              default="hsj", show_default=True,
              help="Decision-based: hsj (L2/Linf), boundary (L2), rays (Linf). Scores: zoo (L2). Gradients: ead "
                   "(L1), cw (L2), fgsm (Linf), pgd (Linf/L2/L1). substitute: the transfer curve of a substitute "
                   "model (FGSM at each --eps, with a Gaussian-noise control).")
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
              help="fgsm/pgd: the L-norm budget (default 0.3); substitute: comma-separated Linf budgets "
                   "(default 0,0.015625,0.03125,0.0625,0.125,0.25).")
@click.option("--surrogate", type=click.Choice(["smooth", "substitute"]), default=None,
              help="Gradient source for fgsm/pgd/ead/cw when the model has none: smooth (SCD weights, sign relaxed "
                   "to tanh: a white-box adaptive attack) or substitute (an MLP trained on the model's labels). "
                   "Labels and the final check always come from the real model.")
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
    """Attack a saved model; print a table, optionally write JSON and the examples.

    Successes are always judged by re-querying the real model on the final, clipped example.
    """
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
    config = AttackConfig(model_path=model_path, method=method, data=data, classes=tuple(classes) if classes else None,
                          data_dir=data_dir, data_path=data_path, n_samples=n_samples, indices=indices, norm=norm,
                          max_queries=max_queries, iters=iters, init_size=init_size, theta=theta, target=target,
                          start=start, eps=eps, surrogate=surrogate, seed_size=seed_size,
                          substitute_rounds=substitute_rounds, substitute_epochs=substitute_epochs, seed=seed,
                          batch_size=batch_size, out=out, save_examples=save_examples, quiet=quiet)
    try:
        run_attack(config)
    except ValueError as err:
        raise click.ClickException(str(err))
    for path, what in ((out, "record"), (save_examples, "examples")):
        if path:
            click.echo(f"{what} written to {path}", err=True)


if __name__ == "__main__":
    main()
