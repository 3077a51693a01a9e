#!/usr/bin/env bash
# lines128: the cascade on the project's 2-core CPU: a 128 px base model that writes 1-5 lines of
# up to 16 printable characters (capitals, digits, sign punctuation), and its 128 -> 256 px
# super-resolution model warm-started from it.
#
# Usage, from the repository root:  bash examples/recipes/lines128.sh STAGE [WORK_DIR]
#   stages, in order:  base-data  base  export-base  sr-data  sr  export-sr  eval  package
#   then, on the packaged base:  confusables-data  confusables  (BASE_RUN=WORK_DIR/confusables) export-base
# Every stage resumes: run it again and it continues from what is on disk (training from
# RUN/checkpoints/latest; Ctrl-C writes a checkpoint). Each training stage fits one background run
# of at most ~2.5 h:  nohup bash examples/recipes/lines128.sh base > base.log 2>&1 &
# When the run folder is gone (a new machine), BASE_INIT=ckpt continues the base from an export
# (BASE_INIT=exports/lines128-base-step_N) with --init: a new run from its weights, in BASE_RUN
# (default WORK_DIR/base; give a new folder, e.g. WORK_DIR/base2, when WORK_DIR/base still exists).
set -euo pipefail
stage=${1:?usage: lines128.sh STAGE [WORK_DIR]}
work=${2:-work/lines128}
glyphfuse=${GLYPHFUSE:-glyphfuse}
base_steps=${BASE_STEPS:-6000}
sr_steps=${SR_STEPS:-3000}
export_dir=${EXPORT_DIR:-exports}  # committed: what a later session continues from
base_run=${BASE_RUN:-$work/base}
latest() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }

case "$stage" in
base-data)
    # 150,000 images (~1.5 min with 2 workers): left-aligned lines at fixed heights, DejaVu Sans Mono
    # Bold 11 px, words in three casings, numbers, prices, times, punctuation, a third of the
    # tokens random strings; no held-out token (glyphfuse/resources/prompts/) is ever drawn
    [ -f "$work/data/metadata.jsonl" ] || "$glyphfuse" synth-fonts "$work/data" --recipe lines128 --count 150000 --seed 0 --workers 2 --overwrite --no-progress
    ;;
base)
    # ~28-35 images/s on the 2-core CPU: 6,000 steps x 32 = 192k images, about 1 h 45 min quiet.
    # Cosine LR from 2e-3 (300 warm-up steps) to 1e-4, and steps with a gradient norm over 4x the
    # running average skipped (a constant 2e-3 diverged at step ~5000 in an earlier run).
    # BASE_INIT=exports/lines128-base-step_N: a new run from those weights, at a lower peak LR
    # (give BASE_INIT again when resuming such a run: it sets the same LR; --init is used once)
    model=(--model lines128) lr=2e-3 warmup=300
    if [ -n "${BASE_INIT:-}" ]; then
        lr=1e-3 warmup=100 model=()
        [ -f "$base_run/checkpoints/latest" ] || model=(--init "$BASE_INIT")
    fi
    "$glyphfuse" train-base "$work/data" --out "$base_run" "${model[@]}" --steps "$base_steps" --batch-size 32 \
        --lr "$lr" --warmup "$warmup" --lr-schedule cosine --min-lr-ratio 0.05 --spike-skip 4 --ema-decay 0.999 \
        --checkpoint-every 500 --keep-last 0 --sample-every 1000 --sample-prompts examples/recipes/lines128-prompts.txt \
        --workers 1 --seed 0 --device cpu --no-progress
    ;;
confusables-data)
    # 60,000 lines128 images plus 30,000 drawn from transcripts that drill the letters the base
    # confused (q written as g, b as h: examples/recipes/confusables_text.py), in one folder
    data=$work/confusables-data
    if [ ! -f "$data/.complete" ]; then  # every step below reruns until the last one has finished
        "$glyphfuse" synth-fonts "$data" --recipe lines128 --count 60000 --seed 7 --workers 2 --overwrite --no-progress
        "${PYTHON:-python}" examples/recipes/confusables_text.py "$work/confusables-transcripts.txt" --count 40000 --seed 11
        "$glyphfuse" synth-fonts "$data/emph" --recipe lines128 --text-file "$work/confusables-transcripts.txt" \
            --count 30000 --seed 8 --workers 2 --overwrite --no-progress
        "${PYTHON:-python}" -c "import json, sys; rows = [json.loads(l) for l in open(sys.argv[1] + '/emph/metadata.jsonl')]; \
open(sys.argv[1] + '/metadata.jsonl', 'a').writelines(json.dumps({**r, 'file_name': 'emph/' + r['file_name']}) + '\n' for r in rows)" "$data"
        touch "$data/.complete"
    fi
    ;;
confusables)
    # 4,000 steps x 32 = 128k images from the packaged base (CONFUSABLES_INIT), cosine LR from 5e-4,
    # EMA 0.998; ~45 min at 48-56 images/s. Export: BASE_RUN=WORK_DIR/confusables ... export-base.
    run=$work/confusables
    init=(--init "${CONFUSABLES_INIT:-glyphfuse/default_model}")
    [ ! -f "$run/checkpoints/latest" ] || init=()
    "$glyphfuse" train-base "$work/confusables-data" --out "$run" "${init[@]}" --steps 4000 --batch-size 32 --lr 5e-4 --warmup 50 \
        --lr-schedule cosine --min-lr-ratio 0.1 --spike-skip 4 --ema-decay 0.998 --checkpoint-every 250 --keep-last 0 \
        --sample-every 100000 --workers 1 --seed 3 --device cpu --no-progress
    ;;
export-base)
    # the EMA weights in fp16 (4.6 MB) into exports/ (committed): what a later session continues
    # from with BASE_INIT when the run folder is gone
    "$glyphfuse" export "$base_run" --out "$export_dir/lines128-$(basename "$base_run")-$(cat "$base_run/checkpoints/latest")" --dtype fp16
    ;;
sr-data)
    # the same layout at twice the size (22 px font): training pairs are these images and their
    # area-downsampled 128 px versions
    [ -f "$work/data256/metadata.jsonl" ] || "$glyphfuse" synth-fonts "$work/data256" --recipe lines128 --size 256 --font-size 22 --count 60000 --seed 1 --workers 2 --overwrite --no-progress
    ;;
sr)
    # Stage 1: warm-start from the base, then train-sr, 2,000 x 16 = 32k images at 256 px, ~10-12
    # images/s, 48 min. Stage 2 on: SR_INIT=exports/lines256-sr-step_N SR_RUN=WORK_DIR/sr2 continues
    # from an export at half the peak LR. SR_T_MAX=0.3 would train only the least noisy 30 % of the
    # timesteps (where sampling starts the SR chain, SamplingSettings.sr_start); a 6k-image ablation
    # showed no gain (examples/recipes/README.md), so all timesteps are trained.
    base=${SR_BASE:-$(latest "$base_run")}  # or SR_BASE=exports/lines128-base-step_N on a new machine
    sr_run=${SR_RUN:-$work/sr}
    init=(--init "${SR_INIT:-$work/sr-init}") lr=1e-3
    if [ -z "${SR_INIT:-}" ]; then
        [ -f "$work/sr-init/config.json" ] || "$glyphfuse" warm-start "$base" --out "$work/sr-init" --sr-size 256 --name lines256
    else
        lr=5e-4
    fi
    [ ! -f "$sr_run/checkpoints/latest" ] || init=()  # resuming: --init is used once
    "$glyphfuse" train-sr "$work/data256" "${init[@]}" --out "$sr_run" --blur --steps "$sr_steps" --batch-size 16 --t-max "${SR_T_MAX:-1}" \
        --lr "$lr" --warmup 100 --lr-schedule cosine --min-lr-ratio 0.05 --spike-skip 4 --ema-decay 0.999 \
        --checkpoint-every 250 --keep-last 0 --sample-every 500 --workers 1 --seed 0 --device cpu --no-progress
    ;;
export-sr)
    sr_run=${SR_RUN:-$work/sr}
    "$glyphfuse" export "$sr_run" --out "$export_dir/lines256-$(basename "$sr_run")-$(cat "$sr_run/checkpoints/latest")" --dtype fp16
    ;;
eval)
    # single samples, the default sampler, no rejection; then the OCR ceiling on real renderings
    base=${EVAL_BASE:-$(latest "$base_run")}
    sr=()
    # (with EVAL_SR the ceiling is read on real renderings at 256 px, the cascade's output size)
    size=(--size 128) tag=""
    if [ -n "${EVAL_SR:-}" ]; then sr=(--sr-checkpoint "$EVAL_SR") size=(--size 256 --font-size 22) tag=256; fi
    for set in cased signs alnum readme original; do
        n=1; case "$set" in readme|original) n=4 ;; esac  # one prompt each: 4 seeds
        "$glyphfuse" eval --checkpoint "$base" "${sr[@]}" --prompts "$set" -n "$n" --seed 0 --no-progress --json "$work/eval_$set${tag:+_sr}.json"
        grep -v '^#' "glyphfuse/resources/prompts/$set.txt" > "$work/prompts_$set.txt"
        [ -f "$work/truth${tag}_$set/metadata.jsonl" ] || "$glyphfuse" synth-fonts "$work/truth${tag}_$set" --recipe lines128 "${size[@]}" --text-file "$work/prompts_$set.txt" --count 200 --seed 1 --overwrite --no-progress
        "$glyphfuse" eval --ground-truth "$work/truth${tag}_$set" --no-progress --json "$work/ceiling${tag}_$set.json"
    done
    # the original's bar with rejection: best of 8 candidates by OCR, 4 seeds
    "$glyphfuse" eval --checkpoint "$base" "${sr[@]}" --prompts original -n 4 --candidates 8 --seed 0 --no-progress --json "$work/eval_original_c8${tag:+_sr}.json"
    ;;
package)
    # the card, from the eval reports of both eval runs (base alone, and EVAL_SR): every score is
    # copied, none typed; then both exports into the package (glyphfuse/default_model/ and its sr/)
    base=${PACKAGE_BASE:?PACKAGE_BASE=exports/lines128-...} sr=${PACKAGE_SR:?PACKAGE_SR=exports/lines256-sr-...}
    # (BENCH_SR: benchmarks/bench_sr.py --json on the same exports, to show what the SR adds)
    bench=(); [ -z "${BENCH_SR:-}" ] || bench=(--bench-sr "$BENCH_SR")
    "${PYTHON:-python}" examples/recipes/lines128_card.py "$work" "$work/card.json" "${bench[@]}" \
        --base-images "${BASE_TRAINING:?one line: what the base training was}" --sr-images "${SR_TRAINING:?one line: what the SR training was}" \
        --status "${STATUS:?one line: which bars the cascade meets and which not}"
    "${PYTHON:-python}" examples/recipes/package_default_model.py "$base" "$work/card.json" --sr "$sr" --dtype float16
    ;;
*)
    echo "unknown stage $stage (base-data, base, export-base, sr-data, sr, export-sr, eval, package, confusables-data, confusables)" >&2; exit 2 ;;
esac
