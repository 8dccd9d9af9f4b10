"""The front door's name for `tokenshift.common.assets` (the offline models and tokenizers by name).

The module lives in `common` because the training code below the CLI loads
models too; this name is the same module object (not a copy), so settings
such as `assets.VERBOSE` made through either name are seen by both.
"""
import sys

from tokenshift.common import assets as _assets

sys.modules[__name__] = _assets
