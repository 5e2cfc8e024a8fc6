#!/usr/bin/env bash
# The paper's measurements on CIFAR-10 0 vs 1 (or MNIST with DATA=mnist) with settings that fit
# a 2-core CPU in about an hour: smaller ensembles than the paper's 100 members, HopSkipJump with
# one run per image. Models go to $RUNS/models (trained once; rerunning skips what exists), each
# measurement to its own resumable run directory; docs/results.md quotes the reports.
#
#   bash benchmarks/eval_cifar.sh            # CIFAR-10 0 vs 1 from ../shared/data
#   DATA=mnist CLASSES="3 5" VOTES=10 CE_VOTES=4 MLP_VOTES=6 BNN_VOTES=2 BNN_ITERS=1500 OTHER_VOTES=4 \
#     N=5 ITERS=50 N_TRANSFER=4 N_SUB=100 TIME_LIMIT=10 bash benchmarks/eval_cifar.sh   # the MNIST run of docs/results.md
set -euo pipefail
cd "$(dirname "$0")/.."
SCD=${SCD:-.venv/bin/scd}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-cifar10}
CLASSES=${CLASSES:-"0 1"}
DATA_DIR=${DATA_DIR:-../shared/data}
RUNS=${RUNS:-runs/$DATA}
VOTES=${VOTES:-20}          # SCD01 and MLP members (paper: 100)
CE_VOTES=${CE_VOTES:-10}    # SCDCE votes (paper: 100)
MLP_VOTES=${MLP_VOTES:-$VOTES}
BNN_VOTES=${BNN_VOTES:-8}   # SCDCEBNN votes (paper: 100) ...
BNN_ITERS=${BNN_ITERS:-2500} # ... of this many iterations (paper: 10,000)
OTHER_VOTES=${OTHER_VOTES:-10} # BNN members (paper: 100); the CNN has half as many, the forest 100 trees
N=${N:-10}                  # test images attacked (paper: 10)
N_TRANSFER=${N_TRANSFER:-8} # images of the transfer runs (paper: 8)
N_SUB=${N_SUB:-500}         # images of the substitute runs
ITERS=${ITERS:-100}         # HopSkipJump iterations (paper: 100)
TIME_LIMIT=${TIME_LIMIT:-5} # seconds of exact search per model and image of scd eval intervals
DATA_ARGS=(--data "$DATA" --classes $CLASSES --data-dir "$DATA_DIR")
M=$RUNS/models
mkdir -p "$M"

train() {  # train OUT ARGS...: skip a model that is already there
  local out=$1; shift
  [ -f "$out" ] || "$SCD" train "$@" "${DATA_ARGS[@]}" --quiet --out "$out"
}
train_scd() {  # the same, continuing an interrupted SCD fit from its checkpoint
  train "$@" --resume
}
train_scd "$M/scd01.scd"    --loss 01 --votes "$VOTES"
train_scd "$M/scdce.scd"    --loss ce --votes "$CE_VOTES"
train_scd "$M/scdcebnn.scd" --loss ce --binary-weights --votes "$BNN_VOTES" --iters "$BNN_ITERS"
train "$M/mlp.model"    --model mlp --votes "$MLP_VOTES"
train "$M/bnn.model"    --model bnn --votes "$OTHER_VOTES"
train "$M/rf.model"     --model rf --votes 100
train "$M/lenet.model"  --model cnn --votes $((OTHER_VOTES / 2))

ALL=(--model scd01="$M/scd01.scd" --model scdce="$M/scdce.scd" --model scdcebnn="$M/scdcebnn.scd"
     --model mlp="$M/mlp.model" --model bnn="$M/bnn.model" --model rf="$M/rf.model" --model lenet="$M/lenet.model")
E=("${DATA_ARGS[@]}" --quiet)
"$SCD" eval accuracy "${ALL[@]}" "${E[@]}" --out "$RUNS/accuracy" --backend sequential
"$SCD" eval distortion "${ALL[@]}" "${E[@]}" --out "$RUNS/distortion" --n "$N" --iters "$ITERS" \
  --init-size 1000 --start nearest --chunk 5
POINTS=$("$PY" -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['config']['points'])))" \
  "$RUNS/distortion/results.json")
# certified intervals of the distortion run (docs/intervals.md)
"$SCD" eval intervals "$RUNS/distortion" --time-limit "$TIME_LIMIT" --quiet
# the first attacked image and its closest adversarial version against each model (Figure 3)
FIRST=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['config']['points'][0])" \
  "$RUNS/distortion/results.json")
"$SCD" eval timeseries "$RUNS/distortion" --sample "$FIRST"
"$SCD" eval transfer "${ALL[@]}" "${E[@]}" --out "$RUNS/transfer" --n "$N_TRANSFER" --iters 20 --init-size 1000 --chunk 8
# Figure 1 on the distortion run's images, with its iterations and starts, so that the full-size
# point of each curve and the distortion table measure the same thing
"$SCD" eval size --model scd01="$M/scd01.scd" --model mlp="$M/mlp.model" --model rf="$M/rf.model" "${E[@]}" \
  --out "$RUNS/size" --sizes 1,2,5,10,20,50,100 --indices "$POINTS" --iters "$ITERS" --init-size 1000 --start nearest \
  --chunk 5
"$SCD" eval substitute --model scd01="$M/scd01.scd" --model mlp="$M/mlp.model" "${E[@]}" --out "$RUNS/substitute" \
  --n "$N_SUB" --seeds 2019 --rounds 6 --epochs 10
# the same images under RayS (L∞) and their intervals (slow: RayS asks one row at a time, and the
# larq BNN answers each call in milliseconds), then the checklist (docs/checklist.md)
"$SCD" eval distortion "${ALL[@]}" "${E[@]}" --out "$RUNS/distortion_linf" --method rays --indices "$POINTS" \
  --max-queries 10000 --chunk 5
"$SCD" eval intervals "$RUNS/distortion_linf" "$RUNS/distortion" --time-limit "$TIME_LIMIT" --quiet
"$SCD" eval checklist "$RUNS/distortion" --subset 2 --quiet   # 2 images: about the run's own attack time
