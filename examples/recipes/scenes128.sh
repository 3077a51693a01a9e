#!/usr/bin/env bash
# scenes128: the colour base model. lines128's text, layout and font (so what the grey model knows
# about writing carries over) in colour scenes of six kinds, conditioned on the kind and the text
# and background colours; warm-started from the grey lines128 base (every tensor but the widened
# first level and the pixel ends: examples/recipes/scenes128_init.py).
#
# Usage, from the repository root:  bash examples/recipes/scenes128.sh STAGE [WORK_DIR]
#   stages, in order:  data  init  base  export-base  truth  eval  controls
# Every stage resumes (training from RUN/checkpoints/latest; Ctrl-C writes a checkpoint). Train in
# the background, at most ~2.5 h a run:  nohup bash examples/recipes/scenes128.sh base > base.log 2>&1 &
# On a new machine without the run folder, BASE_INIT=exports/scenes128-base-step_N BASE_RUN=WORK_DIR/base2
# continues from the committed fp16 export with --init.
set -euo pipefail
stage=${1:?usage: scenes128.sh STAGE [WORK_DIR]}
work=${2:-work/scenes128}
glyphfuse=${GLYPHFUSE:-glyphfuse}
python=${PYTHON:-python}
export_dir=${EXPORT_DIR:-exports}
base_run=${BASE_RUN:-$work/base}
grey=${GREY_BASE:-exports/lines128-base4-step_2400}  # the grey lines128 base the colour one starts from
latest() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }

case "$stage" in
data)
    # 100,000 scenes at 128 px (~6.5 min with 2 workers, 2 GB): the lines128 text in plain, gradient,
    # sign, caption, paper and screen scenes over the curated backgrounds/ (BACKGROUNDS=DIR: your own)
    bg=(); [ -z "${BACKGROUNDS:-}" ] || bg=(--backgrounds "$BACKGROUNDS")
    [ -f "$work/data/metadata.jsonl" ] || "$glyphfuse" synth-fonts "$work/data" --recipe scenes128 --count 100000 --seed 0 --workers 2 "${bg[@]}" --overwrite --no-progress
    ;;
init)
    # the colour model with the grey base's text encoder, weave layers and deeper U-Net levels
    [ -f "$work/init/config.json" ] || "$python" examples/recipes/scenes128_init.py "$grey" "$work/init" --copy inner
    ;;
base)
    # ~30 images/s on the 2-core CPU; constant LR 1e-3 after 100 warm-up steps, spike guard 4x
    init=(--init "${BASE_INIT:-$work/init}")
    [ ! -f "$base_run/checkpoints/latest" ] || init=()  # resuming: --init is used once
    "$glyphfuse" train-base "$work/data" --out "$base_run" "${init[@]}" --steps "${BASE_STEPS:-6000}" --batch-size 32 \
        --lr 1e-3 --warmup 100 --spike-skip 4 --ema-decay 0.999 --checkpoint-every 250 --keep-last 0 --sample-every 500 \
        --sample-prompts examples/recipes/lines128-prompts.txt --workers 1 --seed 0 --device cpu --no-progress
    ;;
export-base)
    "$glyphfuse" export "$base_run" --out "$export_dir/scenes128-$(basename "$base_run")-$(cat "$base_run/checkpoints/latest")" --dtype fp16
    ;;
truth)
    # real renderings of the held-out sets in every kind: the OCR ceiling per kind
    for set in cased signs; do
        grep -v '^#' "glyphfuse/resources/prompts/$set.txt" > "$work/prompts_$set.txt"
        [ -f "$work/truth_$set/metadata.jsonl" ] || "$glyphfuse" synth-fonts "$work/truth_$set" --recipe scenes128 --text-file "$work/prompts_$set.txt" --count 300 --seed 1 --overwrite --no-progress
        "$glyphfuse" eval --ground-truth "$work/truth_$set" --no-progress --json "$work/ceiling_$set.json"
    done
    ;;
eval)
    # single samples, default sampler, no rejection; the kinds in turn (a row per kind)
    base=${EVAL_BASE:-$(latest "$base_run")}
    for set in cased signs; do
        "$glyphfuse" eval --checkpoint "$base" --prompts "$set" -n 1 --seed 0 --no-progress --json "$work/eval_$set.json"
    done
    ;;
controls)
    # text colour asked vs drawn (CIELAB), and a grid of every kind
    base=${EVAL_BASE:-$(latest "$base_run")}
    "$python" benchmarks/bench_controls.py --checkpoint "$base" --json "$work/controls.json" --grid "$work/kinds.png"
    ;;
*)
    echo "unknown stage $stage (data, init, base, export-base, truth, eval, controls)" >&2; exit 2 ;;
esac
