"""Training: the configuration, the input pipeline, fitting, resuming, the model card."""
