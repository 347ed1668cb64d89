"""Running jobs: child processes, the release (promote a run, write its card), the relay, the GPU burst and the
ablation study."""
