"""Datasets into records: one reader per format, splits, EDA, augmentation, the synthetic demo set."""
