#!/usr/bin/env bash
# gpu128: a 128 px base model (one to four lines, mixed case, six fonts) and its 128 -> 256 px
# super-resolution model, trained on one rented H100 in about 22 minutes of commands.
#
# Usage, from the repository root:  bash examples/recipes/gpu128/stage.sh STAGE [STAGE ...]
#   on the GPU machine, in order:   data  base-a  base-b  sr  eval    (README.md: one command each
#                                   or two together; every one under 9 minutes)
#   back on the CPU machine:        score  package
# Every stage resumes: run it again and it continues from what is on disk (training from
# RUN/checkpoints/latest). Training is bounded by wall time: after the stage's seconds the trainer
# gets SIGINT, finishes its step, writes a checkpoint and exits; the next stage continues from it.
#
# Environment:
#   WORK            work folder (data, runs, exports), default runs/gpu128: kept on the GPU machine
#                   between commands while it stays warm (runs/ is git-ignored)
#   OUT             what comes back from the GPU machine (the device tool sets it); default $WORK/out
#   GPU128_SCALE    full (default) or tiny: the CPU dry run (tiny data, model, steps and budgets)
#   GPU128_DEVICE   training/sampling device (default: cuda at full scale, cpu at tiny)
#   GPU128_COMPILE  1: train with --compile (see benchmarks/bench_gpu.py before turning it on)
#   GPU128_STEPS_A, _B, _SR / GPU128_SECONDS_A, _B, _SR: a training stage's step cap (a total) and
#                   wall time, instead of the settings below; GPU128_COUNT_A, _B, _SR: data set sizes
#   GPU128_BASE     the base checkpoint the sr stage warm-starts from (default: the base run, else
#                   $WORK/export/gpu128-base, e.g. carried to a fresh machine)
#   GLYPHFUSE       the glyphfuse command (default: glyphfuse when on PATH, else python3 -m glyphfuse)
set -euo pipefail
export PYTHONUNBUFFERED=1

recipe=examples/recipes/gpu128
work=${WORK:-runs/gpu128}
out=${OUT:-$work/out}
scale=${GPU128_SCALE:-full}
if [ -n "${GLYPHFUSE:-}" ]; then
    read -r -a glyphfuse <<< "$GLYPHFUSE"
elif command -v glyphfuse > /dev/null; then
    glyphfuse=(glyphfuse)
else
    glyphfuse=(python3 -m glyphfuse)
fi

# --- settings: the full run, and the tiny dry run that tests/test_gpu_recipe.py runs on a CPU --------
fonts=(--font DejaVuSansMono-Bold.ttf --font DejaVuSans.ttf --font DejaVuSerif.ttf --font RobotoCondensed-Bold.ttf
       --font OpenSans-Regular.ttf --font CourierPrime-Regular.otf)
style_b=(--charset letters --random-fraction 0.3 --lines 1-4 --tokens 1-3 "${fonts[@]}")
eval_sets=(words lines2 multiline)  # held-out prompt sets (glyphfuse/resources/prompts/)
sr_eval_set=lines2                  # the one the two-stage pipeline (base + SR) is scored on
case $scale in
full)
    device=${GPU128_DEVICE:-cuda}
    model=$recipe/base128.json
    size=128; font_a=16; font_b=14-18; font_sr=28-36
    count_a=150000; count_b=250000; count_sr=120000
    synth_workers=$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))
    # step caps (totals): about twice the steps the stage's seconds buy at the assumed H100 rate
    # (README.md); the wall-time bound is what normally ends a stage
    steps_a=8000; steps_b=18000; steps_sr=7500
    seconds_a=360; seconds_b=450; seconds_sr=360
    train_flags=()
    sample_steps=25; eval_n=1; shard_mb=15; grid_n=8; truth_count=200  # sampling: DPM-Solver++(2M), 25 steps
    ;;
tiny)
    device=${GPU128_DEVICE:-cpu}
    model=$recipe/tiny.json
    size=48; font_a=9; font_b=8-9; font_sr=16-18
    count_a=24; count_b=24; count_sr=16
    synth_workers=1
    steps_a=2; steps_b=4; steps_sr=4
    seconds_a=300; seconds_b=300; seconds_sr=300
    train_flags=(--batch-size 4 --workers 0 --checkpoint-every 1 --sample-every 3)
    sample_steps=2; eval_n=1; shard_mb=0.25; grid_n=2; truth_count=8  # several shards even for the tiny model
    mkdir -p "$work"
    printf 'ab\nCd\\nef\n' > "$work/tiny_prompts.txt"
    eval_sets=("$work/tiny_prompts.txt")
    sr_eval_set=$work/tiny_prompts.txt
    ;;
*)
    echo "error: GPU128_SCALE must be full or tiny, not '$scale'" >&2; exit 2 ;;
esac
# a stage's step cap (a total) and wall time in seconds can be set from outside, e.g. after
# bench_gpu.py; data set sizes too (tests/test_gpu_recipe.py makes the full-scale data small)
count_a=${GPU128_COUNT_A:-$count_a}; count_b=${GPU128_COUNT_B:-$count_b}; count_sr=${GPU128_COUNT_SR:-$count_sr}
steps_a=${GPU128_STEPS_A:-$steps_a}; steps_b=${GPU128_STEPS_B:-$steps_b}; steps_sr=${GPU128_STEPS_SR:-$steps_sr}
seconds_a=${GPU128_SECONDS_A:-$seconds_a}; seconds_b=${GPU128_SECONDS_B:-$seconds_b}; seconds_sr=${GPU128_SECONDS_SR:-$seconds_sr}
if [ "${GPU128_COMPILE:-0}" = 1 ]; then
    train_flags+=(--compile)
fi
sr_size=$((2 * size))
export_flags=(--dtype fp16 --max-shard-mb "$shard_mb")
base_export=$work/export/gpu128-base
sr_export=$work/export/gpu128-sr256

say() { echo "gpu128 [$(date +%H:%M:%S)]: $*"; }
fail() { echo "error: gpu128: $*" >&2; exit 1; }

# run "$@" and stop it with SIGINT after $1 seconds; the trainer then checkpoints and exits
bounded() {
    local seconds=$1 status=0
    shift
    timeout -s INT -k 60 "$seconds" "$@" || status=$?
    if [ "$status" = 124 ]; then
        say "time budget of ${seconds}s reached: stopped with a checkpoint; the next stage continues from it"
    elif [ "$status" != 0 ]; then
        fail "'$*' exited with status $status; run the same stage again to resume from the last checkpoint"
    fi
}

synth() {  # NAME SYNTH-FONTS-OPTIONS...: make a data set unless it is complete already
    local name=$1
    shift
    if [ -f "$work/data/$name/metadata.jsonl" ]; then
        say "data/$name is complete"
        return
    fi
    "${glyphfuse[@]}" synth-fonts "$work/data/$name" --recipe lines64 --seed 0 --workers "$synth_workers" --overwrite "$@"
}
data_a() { synth a --size "$size" --count "$count_a" --font-size "$font_a" --lines 1-3; }
data_b() { synth b --size "$size" --count "$count_b" "${style_b[@]}" --font-size "$font_b"; }
data_sr() { synth sr --size "$sr_size" --count "$count_sr" "${style_b[@]}" --font-size "$font_sr"; }

latest_step() {  # RUN: the step of RUN/checkpoints/latest, or nothing
    sed -n 's/^step_\([0-9]*\)$/\1/p' "$1/checkpoints/latest" 2>/dev/null || true
}

export_run() {  # RUN EXPORT: package RUN's latest EMA weights (fp16 shards) and put them in $out
    local name
    name=$(basename "$2")
    rm -rf "$2" "$out/$name"
    "${glyphfuse[@]}" export "$1" --out "$2" "${export_flags[@]}"
    mkdir -p "$out"
    cp -r "$2" "$out/$name"
    if [ -f "$1/metrics.jsonl" ]; then
        say "last metrics of $1: $(tail -n 1 "$1/metrics.jsonl")"
    fi
}

train_base() {  # DATA STEPS SECONDS [MODEL-FLAGS...]: default --model "$model"
    local data=$1 steps=$2 seconds=$3
    shift 3
    local model_flags=("$@")
    [ ${#model_flags[@]} -gt 0 ] || model_flags=(--model "$model")
    bounded "$seconds" "${glyphfuse[@]}" train-base "$work/data/$data" --out "$work/base" "${model_flags[@]}" \
        --config "$recipe/train-base.json" --steps "$steps" --device "$device" --no-progress "${train_flags[@]}"
    export_run "$work/base" "$base_export"
}

# --- the stages -----------------------------------------------------------------------------------
stage_data() {
    data_a
    data_b
    data_sr
}

stage_base_a() {  # curriculum stage a: lines64's clean style at 128 px (lowercase, one mono font)
    data_a
    train_base a "$steps_a" "$seconds_a"
}

stage_base_b() {  # curriculum stage b, the same run: mixed case, 1-4 lines, six fonts
    if [ -n "$(latest_step "$work/base")" ]; then
        data_b
        train_base b "$steps_b" "$seconds_b"
    elif [ -f "$base_export/config.json" ]; then  # a fresh machine: a new run from base-a's carried weights
        say "no base run here (the GPU machine was given back); starting stage b from the carried $base_export"
        local carried=$work/base-a-weights
        rm -rf "$carried" && cp -r "$base_export" "$carried"  # export_run replaces $base_export at the end
        data_b
        train_base b "$steps_b" "$seconds_b" --init "$carried"
    else
        fail "$work/base has no checkpoint and no $base_export was carried: run 'data base-a' first, or carry the gpu128-base that base-a brought back"
    fi
}

stage_sr() {  # warm-start from the base run (or, on a fresh machine, from its carried export), then train
    local base=${GPU128_BASE:-$work/base}
    if [ -z "${GPU128_BASE:-}" ] && [ -z "$(latest_step "$work/base")" ] && [ -f "$base_export/config.json" ]; then
        base=$base_export
    fi
    data_sr
    if [ -z "$(latest_step "$work/sr")" ] && [ ! -f "$work/sr-init/config.json" ]; then
        [ -e "$base" ] || fail "no base model at $base: run base-a and base-b first, or carry the exported $base_export"
        "${glyphfuse[@]}" warm-start "$base" --out "$work/sr-init" --sr-size "$sr_size"
    fi
    bounded "$seconds_sr" "${glyphfuse[@]}" train-sr "$work/data/sr" --init "$work/sr-init" --out "$work/sr" \
        --config "$recipe/train-sr.json" --steps "$steps_sr" --device "$device" --no-progress "${train_flags[@]}"
    export_run "$work/sr" "$sr_export"
}

stage_eval() {  # sample grids of held-out prompts; OCR scores too where tesseract is installed
    [ -f "$base_export/config.json" ] && [ -f "$sr_export/config.json" ] || fail "no exported models in $work/export: run base-b and sr first"
    mkdir -p "$work/eval"
    local common=(--steps "$sample_steps" --sampler dpmpp-2m --seed 0 --device "$device")
    "${glyphfuse[@]}" sample 'Zephyr Quokka\nfjord kayak' -c "$base_export" -o "$work/eval/base_lines.png" -n "$grid_n" --grid "${common[@]}"
    "${glyphfuse[@]}" sample 'glyph\nPixel Puffin\nsphinx' -c "$base_export" -o "$work/eval/base_mixed.png" -n "$grid_n" --grid "${common[@]}"
    "${glyphfuse[@]}" sample 'Zephyr Quokka\nfjord kayak' -c "$base_export" --sr-checkpoint "$sr_export" -o "$work/eval/sr_lines.png" -n "$((grid_n / 2))" --grid "${common[@]}"
    if [ "$scale" = full ] && command -v tesseract > /dev/null; then
        score_sets "$work/eval" "$device"
    else
        say "no tesseract on this machine: the OCR scores come from 'stage.sh score' on the CPU machine"
    fi
}

score_sets() {  # FOLDER DEVICE: glyphfuse eval of the base model, and of base + SR on one set
    local set name
    for set in "${eval_sets[@]}"; do
        name=$(basename "$set" .txt)
        "${glyphfuse[@]}" eval -c "$base_export" --prompts "$set" -n "$eval_n" --steps "$sample_steps" --sampler dpmpp-2m \
            --seed 0 --device "$2" --json "$1/eval_base_$name.json"
    done
    "${glyphfuse[@]}" eval -c "$base_export" --sr-checkpoint "$sr_export" --prompts "$sr_eval_set" -n 1 --steps "$sample_steps" \
        --sampler dpmpp-2m --seed 0 --device "$2" --json "$1/eval_sr_$(basename "$sr_eval_set" .txt).json"
}

stage_score() {  # on the CPU machine, with the exports brought back into $work/export
    [ -f "$base_export/config.json" ] && [ -f "$sr_export/config.json" ] || fail "copy gpu128-base and gpu128-sr256 (brought back by base-b and sr) into $work/export first"
    mkdir -p "$work/score"
    score_sets "$work/score" cpu
    local set name
    for set in "${eval_sets[@]}"; do  # the OCR ceiling: real renderings of the same prompts in the stage-b style
        name=$(basename "$set" .txt)
        if [ -f "$set" ]; then
            cp "$set" "$work/score/prompts_$name.txt"
        else
            grep -v '^#' "glyphfuse/resources/prompts/$set.txt" > "$work/score/prompts_$name.txt"
        fi
        synth "truth_$name" --size "$size" "${style_b[@]}" --font-size "$font_b" --text-file "$work/score/prompts_$name.txt" --count "$truth_count"
        "${glyphfuse[@]}" eval --ground-truth "$work/data/truth_$name" --json "$work/score/ceiling_$name.json"
    done
}

stage_package() {  # on the CPU machine: the exports with their model cards, ready to ship
    "${glyphfuse[@]}" export "$base_export" --out "$work/package/gpu128-base" "${export_flags[@]}" --card "$recipe/card-base.json"
    "${glyphfuse[@]}" export "$sr_export" --out "$work/package/gpu128-sr256" "${export_flags[@]}" --card "$recipe/card-sr256.json"
}

# --- what comes back: logs in one archive, and the limits of the device tool checked ------------------
bring_back() {  # NAME: archive logs, metrics, sample grids and eval results into $out
    local items=() item
    for item in logs base/run.json base/metrics.jsonl base/data_problems.txt sr/run.json sr/metrics.jsonl \
                sr/data_problems.txt eval; do
        [ -e "$work/$item" ] && items+=("$item")
    done
    for item in base sr; do  # the newest two sample grids of each run
        if [ -d "$work/$item/samples" ]; then
            while read -r grid; do items+=("$item/samples/$grid"); done < <(ls -t "$work/$item/samples" | head -n 2)
        fi
    done
    mkdir -p "$out"
    tar -czf "$out/logs-$1.tar.gz" -C "$work" "${items[@]}"
    check_out
}

check_out() {  # the device tool brings back at most 8 files of at most 16 MiB, 64 MiB in all, 2 folders deep
    local files total largest bad
    files=$(find "$out" -type f | wc -l)
    total=$(find "$out" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    largest=$(find "$out" -type f -printf '%s\n' | sort -n | tail -n 1)
    bad=$(cd "$out" && find . -mindepth 1 | awk -F/ 'NF > 4 || $NF !~ /^[A-Za-z0-9._-]+$/' | head -n 1)
    say "comes back: $files files, $((total / 1024)) KiB in all, largest $(( ${largest:-0} / 1024 )) KiB"
    find "$out" -type f -printf '  %P  %s bytes\n' | sort
    if [ "$files" -gt 8 ] || [ "${largest:-0}" -gt $((16 * 1024 * 1024)) ] || [ "$total" -gt $((64 * 1024 * 1024)) ] || [ -n "$bad" ]; then
        fail "$out is over the device tool's limits (8 files, 16 MiB each, 64 MiB in all, 2 folders deep, plain names)${bad:+: $bad}"
    fi
}

[ $# -gt 0 ] || { awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 2; }
for stage in "$@"; do
    case $stage in
    data | base-a | base-b | sr | eval | score | package) ;;
    *) fail "unknown stage '$stage'; stages: data base-a base-b sr eval (GPU), score package (CPU)" ;;
    esac
done
mkdir -p "$work/logs" "$out"
finish() {  # on every exit, a failed stage too: what the device tool brings back
    local status=$?
    trap - EXIT
    case " $stages " in
    *" data "* | *" base-a "* | *" base-b "* | *" sr "* | *" eval "*) bring_back "${stages// /-}" || status=1 ;;
    esac
    exit "$status"
}
stages="$*"
trap finish EXIT
say "stages $*; scale $scale, device $device, work $work, out $out"
"${glyphfuse[@]}" --version || fail "'${glyphfuse[*]}' does not run here; set GLYPHFUSE"
if [[ $device == cuda* && " $* " =~ \ (base-a|base-b|sr|eval)\  ]]; then  # fail in seconds, not after the data stage
    python3 -c 'import sys, torch; print("torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "NO CUDA"); sys.exit(not torch.cuda.is_available())' \
        || fail "CUDA is not available to python3 here"
fi
for stage in "$@"; do
    started=$SECONDS
    "stage_${stage//-/_}" 2>&1 | tee -a "$work/logs/$stage.log"
    say "stage $stage done in $((SECONDS - started)) s" | tee -a "$work/logs/$stage.log"
done
