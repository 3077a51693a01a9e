#!/usr/bin/env bash
# lines64: the packaged default model. One or two lines of lowercase words and random strings
# (at most 9 characters a line) at 64 px, trained on the project's 2-core CPU.
# Usage: bash examples/recipes/lines64.sh [WORK_DIR] [STEPS]   (from the repository root)
# Every stage resumes: run the same command again after Ctrl-C (training writes a checkpoint).
set -euo pipefail
work=${1:-work/lines64}
steps=${2:-2500}
glyphfuse=${GLYPHFUSE:-glyphfuse}

# 1. data: the lines64 data recipe (left-aligned lines at fixed heights, one monospaced bold font
#    at 10 px, light background, half of the tokens random strings); no token of the held-out eval
#    prompt sets (glyphfuse/resources/prompts/) is ever drawn. ~45 s with 2 workers.
if [ ! -f "$work/data/metadata.jsonl" ]; then
    "$glyphfuse" synth-fonts "$work/data" --recipe lines64 --count 100000 --seed 0 --workers 2 --overwrite
fi

# 2. training: ~34 images/s on the 2-core CPU (about 16 steps a minute at batch 32)
"$glyphfuse" train-base "$work/data" --out "$work/run" --model lines64 --steps "$steps" --batch-size 32 \
    --lr 2e-3 --warmup 200 --ema-decay 0.999 --checkpoint-every 500 --keep-last 0 --sample-every 1000 \
    --sample-prompts examples/recipes/lines64-prompts.txt --workers 1 --seed 0 --device cpu --no-progress
checkpoint="$work/run/checkpoints/$(cat "$work/run/checkpoints/latest")"

# 3. eval on the held-out sets (single sample, DDIM 50 steps and the default DDIM 8, guidance 3, no rejection), the
#    words set again with 8 candidates, and the OCR ceiling on real renderings of the same prompts
for set in words lines2 strings; do
    "$glyphfuse" eval --checkpoint "$checkpoint" --prompts "$set" -n 2 --seed 0 --steps 50 --json "$work/eval_$set.json"
    "$glyphfuse" eval --checkpoint "$checkpoint" --prompts "$set" -n 4 --seed 0 --json "$work/eval_${set}_default_steps.json"
    grep -v '^#' "glyphfuse/resources/prompts/$set.txt" > "$work/prompts_$set.txt"
    if [ ! -f "$work/truth_$set/metadata.jsonl" ]; then
        "$glyphfuse" synth-fonts "$work/truth_$set" --recipe lines64 --text-file "$work/prompts_$set.txt" --count 200 --seed 1 --overwrite
    fi
    "$glyphfuse" eval --ground-truth "$work/truth_$set" --json "$work/ceiling_$set.json"
done
"$glyphfuse" eval --checkpoint "$checkpoint" --prompts words -n 2 --candidates 8 --seed 0 --steps 50 --json "$work/eval_words_best8.json"

# 4. packaging (the card holds the figures above): python examples/recipes/package_default_model.py "$checkpoint" examples/recipes/lines64-card.json
echo "trained checkpoint: $checkpoint"
