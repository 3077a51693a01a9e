#!/usr/bin/env bash
# paint128: the colour painter. The colour base scenes128 (examples/recipes/scenes128.sh) with three
# more inputs, the masked picture, the mask and the text's glyphs, whose weights start at zero, so it
# begins as the base model. Trained on the same scene data with its own text typeset as the glyphs,
# whole pictures (40 %), the text's frame masked (40 %) and random rectangles (20 %)
# (glyphfuse/training/inpaint.py). The packaged grey model writes the glyphs when it samples
# (glyphfuse sample/eval/edit --glyphs model), so the spelling stays the grey model's own.
#
# Usage, from the repository root:  bash examples/recipes/paint128.sh STAGE [WORK_DIR]
#   stages, in order:  init  train  export  eval  controls  bench  card  package
# WORK_DIR (default work/scenes128) must hold the scenes128 data (scenes128.sh data). BASE=CKPT names
# the colour base to start from (default: the newest export of it). Training resumes; Ctrl-C writes a
# checkpoint:  nohup bash examples/recipes/paint128.sh train > paint.log 2>&1 &
set -euo pipefail
stage=${1:?usage: paint128.sh STAGE [WORK_DIR]}
work=${2:-work/scenes128}
glyphfuse=${GLYPHFUSE:-glyphfuse}
python=${PYTHON:-python}
export_dir=${EXPORT_DIR:-exports}
run=${PAINT_RUN:-$work/paint}
base=${BASE:-$(ls -d "$export_dir"/scenes128-base*-step_* 2>/dev/null | sort -t_ -k2 -n | tail -1 || true)}
latest() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }

case "$stage" in
init)
    [ -n "$base" ] || { echo "no colour base export in $export_dir; BASE=CKPT names one (commit f61157b holds exports/scenes128-base-step_10112)" >&2; exit 2; }
    # every tensor of the colour base copied; the masked picture's, the mask's and the glyphs' input weights zero
    [ -f "$work/paint_init/config.json" ] || "$glyphfuse" warm-start "$base" --inpaint --glyphs --out "$work/paint_init" --name paint128
    ;;
train)
    init=(--init "$work/paint_init")
    [ ! -f "$run/checkpoints/latest" ] || init=()  # resuming: --init is used once
    [ -z "${PAINT_INIT:-}" ] || [ -f "$run/checkpoints/latest" ] || init=(--init "$PAINT_INIT")  # go on from an export
    "$glyphfuse" train-inpaint "$work/data" --out "$run" "${init[@]}" --steps "${PAINT_STEPS:-6000}" --batch-size 32 \
        --lr 6e-4 --warmup 100 --spike-skip 4 --ema-decay 0.998 --checkpoint-every 250 --keep-last 2 --sample-every 250 \
        --sample-prompts examples/recipes/lines128-prompts.txt --workers 1 --seed 0 --device cpu --no-progress
    ;;
export)
    "$glyphfuse" export "$run" --out "$export_dir/paint128-$(cat "$run/checkpoints/latest")" --dtype fp16
    ;;
eval)
    # held-out prompts, one sample each, every scene kind in turn; glyphs from the grey model and typeset
    ckpt=${PAINT_CKPT:-$(latest "$run")}
    for prompts in cased signs; do
        for glyphs in model typeset; do
            "$glyphfuse" eval -c "$ckpt" --prompts "$prompts" -n 1 --seed 0 --glyphs "$glyphs" --no-progress \
                --json "$work/paint_${prompts}_${glyphs}.json"
        done
    done
    "$glyphfuse" eval -c "$ckpt" --prompts cased -n 1 --seed 0 --candidates 4 --no-progress --json "$work/paint_cased_model_c4.json"
    ;;
controls)
    # the colour controls: ΔE of the drawn text and background colours, and the kinds grid
    "$python" benchmarks/bench_controls.py --checkpoint "${PAINT_CKPT:-$(latest "$run")}" --json "$work/paint_controls.json" \
        --grid "$work/paint_kinds.png"
    ;;
card)
    # the card of the packaged painter, every score copied from the reports of eval and controls
    "$python" examples/recipes/paint128_card.py "$work" "${CARD:-glyphfuse/default_model/paint/card.json}" \
        --training "${TRAINING:?TRAINING='what ran' is written into the card}" --status "${STATUS:?STATUS='where it stands'}"
    ;;
package)
    # the export becomes the packaged painter (sample --colour, edit)
    mkdir -p glyphfuse/default_model/paint
    cp "${PAINT_CKPT:?PAINT_CKPT=exports/paint128-step_N}/config.json" "$PAINT_CKPT/model.safetensors" glyphfuse/default_model/paint/
    ;;
bench)
    # glyphfuse edit on held-out photos (benchmarks/edit_photos), one and four candidates
    "$python" benchmarks/bench_edit.py --checkpoint "${PAINT_CKPT:-$(latest "$run")}" --candidates 1 4 --json "$work/edit_paint.json" \
        --examples "$work/edit_paint.png"
    ;;
*)
    echo "unknown stage $stage (init, train, export, eval, controls, bench, card, package)" >&2; exit 2 ;;
esac
