"""Model names and sizes (registry), networks, heads, losses and the metrics Keras tracks in
training."""
