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


@main.command()
@click.option("--loss", type=click.Choice(["01", "ce"]), default="01", show_default=True,
              help="Output loss: 0-1 (SCD01) or cross-entropy (SCDCE).")
@click.option("--binary-weights", is_flag=True, help="Binary (+-1) weights: SCD01BNN / SCDCEBNN.")
@click.option("--votes", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--hidden", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--iters", type=click.IntRange(min=1), default=None,
              help="Iterations per vote [default: 1000, or 10000 with --binary-weights].")
@click.option("--nrows", type=click.FloatRange(0, 1, min_open=True), default=0.75, show_default=True)
@click.option("--updated-features", type=click.IntRange(min=1), default=128, show_default=True)
@_data_options
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", type=int, default=-1, show_default=True,
              help="CPU worker processes training vote groups (-1: one per core).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Save the model here (.scd).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint of an interrupted run with the same --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(loss, binary_weights, votes, hidden, iters, nrows, updated_features, data, classes, data_dir,
          data_path, device, seed, jobs, out, resume, quiet):
    """Train an SCD ensemble and print its train/test accuracy and training time."""
    from scd import SCDClassifier

    if resume and out is None:
        raise click.UsageError("--resume needs --out (the checkpoint is OUT.ckpt).")
    ds = _load(data, classes, data_dir, data_path)
    checkpoint = f"{out}.ckpt" if out else None
    if checkpoint and os.path.exists(checkpoint) and not resume:
        os.remove(checkpoint)
    model = SCDClassifier(
        loss=loss, binary_weights=binary_weights, n_votes=votes, hidden_nodes=hidden,
        n_iters=iters or (10000 if binary_weights else 1000), nrows=nrows,
        updated_features=updated_features, random_state=seed, device=device, n_jobs=jobs,
        checkpoint=checkpoint, verbose=0 if quiet else 1,
    )
    variant = {("01", False): "SCD01", ("ce", False): "SCDCE", ("01", True): "SCD01BNN", ("ce", True): "SCDCEBNN"}
    click.echo(f"{variant[loss, binary_weights]}: {votes} votes x {model.n_iters} iterations, H={hidden}, "
               f"on {ds.name} {ds.classes} ({len(ds.x_train)} train / {len(ds.x_test)} test, "
               f"{ds.x_train.shape[1]} features)", err=True)
    try:
        model.fit(ds.x_train, ds.y_train, resume=resume)
    except KeyboardInterrupt:
        hint = f" Resume with: --out {out} --resume" if checkpoint else ""
        click.echo(f"\ninterrupted.{hint}", err=True)
        sys.exit(130)
    train_acc, test_acc = model.score(ds.x_train, ds.y_train), model.score(ds.x_test, ds.y_test)
    click.echo(f"train accuracy  {train_acc:.4f}")
    click.echo(f"test accuracy   {test_acc:.4f}")
    click.echo(f"training time   {model.fit_time_:.1f} s ({model.fit_time_ / votes:.2f} s per vote)")
    if out:
        model.save(out)
        if checkpoint and os.path.exists(checkpoint):
            os.remove(checkpoint)
        click.echo(f"saved to {out}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@_data_options
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--member", type=int, default=None, help="Predict with this single vote only.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write predictions as CSV.")
def predict(model_path, data, classes, data_dir, data_path, split, member, out):
    """Predict a dataset split with a saved model and print its accuracy and throughput."""
    import numpy as np

    import scd
    from eval.io import atomic_open

    model = scd.load(model_path)
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
    """Show what a saved model is: variant, parameters, shapes, seed."""
    from scd._persist import load_bundle

    meta, arrays = load_bundle(model_path)
    meta["arrays"] = {k: list(v.shape) for k, v in arrays.items() if k != "classes"}
    meta["classes"] = arrays["classes"].tolist() if "classes" in arrays else None
    click.echo(json.dumps(meta, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
