#!/usr/bin/env bash
# The README's main job: write PROMPT into an image.
# With the packaged default model: one `glyphfuse sample` (best of 8 candidates by OCR), then, when
# the colour painter is packaged too, the same prompt in colour (`--colour`, best of 4) beside it as
# OUT_colour.png. Without
# one (an install that left it out): render a small synthetic set, train the `tiny` preset for a
# few minutes on this machine and sample from that checkpoint, so the whole loop still runs.
# Usage: scripts/demo.sh GLYPHFUSE_BIN PROMPT OUT
set -euo pipefail
glyphfuse="$1"; prompt="$2"; out="$3"
py="$(dirname "$glyphfuse")/python"

if "$py" -c "import glyphfuse.sampling.generation as s; raise SystemExit(0 if (s.DEFAULT_MODEL_DIR / 'model.safetensors').is_file() else 1)"; then
    "$glyphfuse" sample "$prompt" -o "$out" --candidates 8
    if "$py" -c "import glyphfuse.sampling.generation as s; raise SystemExit(0 if s.packaged_painter_dir() else 1)"; then
        "$glyphfuse" sample "$prompt" -o "${out%.*}_colour.${out##*.}" --colour --candidates 4
    fi
    exit 0
fi

echo "demo: no default model is installed; training a tiny one on this machine (a few minutes)"
work="runs/demo"
if [ ! -f "$work/data/metadata.jsonl" ]; then
    "$glyphfuse" synth-fonts "$work/data" --count 2000 --size 32 --seed 0 --workers 2 --overwrite
fi
"$glyphfuse" train-base "$work/data" --out "$work/run" --model tiny --steps 300 --batch-size 16 \
    --lr 1e-3 --warmup 50 --ema-decay 0.99 --checkpoint-every 100 --sample-every 0 --workers 1 --device auto
"$glyphfuse" sample "$prompt" -o "$out" --checkpoint "$work/run/checkpoints/$(cat "$work/run/checkpoints/latest")" -n 4 --grid --steps 50
