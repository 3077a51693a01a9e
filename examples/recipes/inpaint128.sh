#!/usr/bin/env bash
# inpaint128: the edit model of `glyphfuse edit`. The colour base scenes128 (examples/recipes/scenes128.sh)
# with two more inputs, the masked picture and the mask, whose weights start at zero, so it begins as
# the base model; trained on the same scene data with the text's frame masked (60 %), random
# rectangles (30 %) and everything (10 %) (glyphfuse/training/inpaint.py).
#
# Usage, from the repository root:  bash examples/recipes/inpaint128.sh STAGE [WORK_DIR]
#   stages, in order:  init  train  export  bench  baseline
# WORK_DIR (default work/scenes128) must hold the scenes128 data (scenes128.sh data). BASE=CKPT names
# the colour base to start from (default: the newest export of it). Training resumes; Ctrl-C writes a
# checkpoint:  nohup bash examples/recipes/inpaint128.sh train > inpaint.log 2>&1 &
set -euo pipefail
stage=${1:?usage: inpaint128.sh STAGE [WORK_DIR]}
work=${2:-work/scenes128}
glyphfuse=${GLYPHFUSE:-glyphfuse}
python=${PYTHON:-python}
export_dir=${EXPORT_DIR:-exports}
run=${INPAINT_RUN:-$work/inpaint}
base=${BASE:-$(ls -d "$export_dir"/scenes128-base*-step_* 2>/dev/null | sort -t_ -k2 -n | tail -1 || true)}
latest() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }

case "$stage" in
init)
    [ -n "$base" ] || { echo "no colour base export in $export_dir; BASE=CKPT names one (commit f61157b holds exports/scenes128-base-step_10112)" >&2; exit 2; }
    # every tensor of the colour base copied; the masked picture's and the mask's input weights zero
    [ -f "$work/inpaint_init/config.json" ] || "$glyphfuse" warm-start "$base" --inpaint --out "$work/inpaint_init" --name inpaint128
    ;;
train)
    init=(--init "$work/inpaint_init")
    [ ! -f "$run/checkpoints/latest" ] || init=()  # resuming: --init is used once
    "$glyphfuse" train-inpaint "$work/data" --out "$run" "${init[@]}" --steps "${INPAINT_STEPS:-4000}" --batch-size 32 \
        --lr 5e-4 --warmup 100 --spike-skip 4 --ema-decay 0.999 --checkpoint-every 250 --keep-last 2 --sample-every 500 \
        --sample-prompts examples/recipes/lines128-prompts.txt --workers 1 --seed 0 --device cpu --no-progress
    ;;
export)
    "$glyphfuse" export "$run" --out "$export_dir/inpaint128-$(cat "$run/checkpoints/latest")" --dtype fp16
    ;;
bench)
    # held-out photos (benchmarks/edit_photos), held-out words and two-line prompts, one and four candidates
    "$python" benchmarks/bench_edit.py --checkpoint "${EDIT_CKPT:-$(latest "$run")}" --candidates 1 4 --json "$work/edit_model.json" \
        --examples "$work/edit_model.png"
    ;;
baseline)
    # the training-free baseline on the colour base: RePaint without and with resampling
    for resample in 1 3; do
        "$python" benchmarks/bench_edit.py --checkpoint "$base" --method repaint --resample "$resample" --sampler ddpm \
            --json "$work/edit_repaint$resample.json"
    done
    ;;
*)
    echo "unknown stage $stage (init, train, export, bench, baseline)" >&2; exit 2 ;;
esac
