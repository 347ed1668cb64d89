"""Photos and degradations: image folders and training pairs, synthetic noise/rain/blur, splits, the data pack
and batches made on the device."""
