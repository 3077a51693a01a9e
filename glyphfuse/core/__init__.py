"""What every command shares: model, diffusion math, device policy, configs, checkpoint I/O."""
