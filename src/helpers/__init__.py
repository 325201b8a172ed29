"""Shared code behind the facial affect notebooks (see DESIGN.md in the project docs)."""

import os as _os

# albumentations phones home on import unless told not to; this project runs offline.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# TensorFlow's C++ INFO chatter buries the messages users need.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI, bfloat16 or
# AMX; on a CPU with AVX2 alone its own convolutions run instead, several times slower (one
# training step, EPYC Zen 3, 2 cores: ResNet50 at 32 px 5.5 times the images/s with oneDNN, VGG16
# 2.4, the custom CNN 1.2-1.4, MobileNetV2 1.04; benchmarks/RESULTS.md). Before TensorFlow loads;
# TF_ENABLE_ONEDNN_OPTS=0 still turns them off.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# ... and says so in two lines at every import that no setting silences: they are dropped. In a
# notebook run by hand, a ConfigError or DataError shows as its message, not a traceback.
from helpers.core import kernel as _kernel
from helpers.core import quiet_import as _quiet_import

_quiet_import.install()
_kernel.install()

__version__ = "0.1.0"
