"""The base layer: errors, labels and head names, landmarks, images, archives, the records table."""
