#!/usr/bin/env bash
# words32: the packaged default model. words32 preset (1.5M parameters), 32 px grayscale,
# lowercase words of 3-5 letters in one condensed bold font at 12-14 px.
# Hardware: the project's 2-core CPU machine (no GPU was lent to this task).
# Usage: bash examples/recipes/words32.sh WORK_DIR   (run from the repository root)
set -euo pipefail
work=${1:-work/words32}
mkdir -p "$work/fonts"
cp fonts/OpenSans-CondBold.ttf "$work/fonts/"
# training words: the shipped list's lowercase words of 3-5 letters (1,952 words); the held-out
# eval prompts (glyphfuse/resources/prompts/) are not in that list
awk 'length($0)>=3 && length($0)<=5 && $0 ~ /^[a-z]+$/' glyphfuse/resources/words.txt > "$work/words.txt"
glyphfuse synth-fonts "$work/data" --count 40000 --size 32 --seed 7 --workers 2 \
    --text-file "$work/words.txt" --fonts "$work/fonts" --font-size 12-14 --overwrite
# trained until the wall-clock budget ran out (Ctrl-C writes a checkpoint; the same command resumes)
glyphfuse train-base "$work/data" --out "$work/run" --model words32 --steps 100000 --batch-size 32 \
    --lr 1e-3 --warmup 200 --ema-decay 0.999 --checkpoint-every 500 --keep-last 0 --sample-every 1000 \
    --sample-prompts examples/recipes/words32-prompts.txt --workers 1 --seed 0 --device cpu --no-progress
