"""Training: the trainer (`python -m drcnet.train`), the per-task recipes, the losses, the VGG19 features of the
contrastive loss and the DFR mask statistics. Importing this package loads nothing; the trainer's modules:

    config.py     TrainConfig (frozen: never changed while training), the parser, --recipe defaults
    dist.py       Dist (the process's place in a torchrun job), setup_torch
    batches.py    IterationBatches, the training data, the loader, the fixed validation set
    schedule.py   Cosine, FittedCosine (--minutes), WallClock (--schedule time) behind one interface
    state.py      RunState, state.pt (save, load with the resume checks), RunFiles (the run folder)
    step.py       EMA, the compiled forward's eager fallback, StepMeter, validation
    run.py        train(cfg) and TrainingRun: the step/validate/save loop
    cli.py        main(argv): python -m drcnet.train

The defaults are the paper's recipe (spec section 5).

    python -m drcnet.train --task denoise --preset lite                      # fetched photos, synthetic noise
    python -m drcnet.train --task denoise --data DIR --iters 2000 --patch 64 --batch 8 --out runs/mine
    python -m drcnet.train --task deblur --paired /data/GoPro --layout gopro
    python -m drcnet.train ... --out runs/mine --resume                      # continue after a stop or a crash
    python -m drcnet.train --recipe deblur --init checkpoints/deblur.safetensors --schedule time --minutes 60
    torchrun --nproc_per_node 4 -m drcnet.train ...                          # DDP, one process per GPU

Recipe: Adam lr 2e-4, cosine annealing per iteration down to 1e-7, 256x256 patches, batch 32, 400k iterations,
flips and 90-degree rotations, loss L1 + alpha * Intra-CR (alpha 0.04) applied to out1 and to out2 and summed,
no gradient clipping (the public code clipped the norm at 0.01: --clip 0.01).

The data stream is a pure function of (seed, iteration): the batch at iteration k is made of dataset items
k*B .. k*B+B-1 (B the global batch; rank r of a DDP job takes its slice of those). The datasets are
deterministic per item, so a resumed run sees exactly the batches it would have seen, and no sampler state is
saved. A run directory holds:

    state.pt           full training state (model, EMA, Adam, scheduler, RNG states, iteration, elapsed seconds,
                       cumulative lr, the schedule's own state), written atomically
    last.safetensors   the latest weights (raw or EMA, whichever validated better) as a drcnet checkpoint
    best.safetensors   the weights with the best validation PSNR so far (metadata "weights": "raw" | "ema")
    log.jsonl          one JSON line per log interval, per validation, and the DFR mask statistics
    config.json        the TrainConfig of the latest start, as given (a fitted --minutes length is in
                       state.pt's `schedule` and in log.jsonl's `schedule` event)

A kill -9 at any moment loses at most the iterations since the last save (--save-every). Resuming is bitwise
exact for iteration schedules (with --compile off); a --schedule time run resumes on its clock (the elapsed
seconds in state.pt) but not bit for bit, since the learning rate of a step depends on the wall clock.

Every validation scores the raw weights and their EMA (--ema) and logs the DFR mask statistics
(drcnet/train/maskstats.py); best/last.safetensors keep the better weights, labelled "weights": "raw" | "ema".
"""
