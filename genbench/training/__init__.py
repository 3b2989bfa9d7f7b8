"""Training recipes (sit, repa, repae), their losses, EMA and data loading."""
