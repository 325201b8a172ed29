"""Shared code behind the facial affect notebooks (see DESIGN.md in the project docs)."""

import os as _os

# albumentations phones home on import unless told not to; this project runs offline.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# TensorFlow's C++ INFO chatter buries the messages users need.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
