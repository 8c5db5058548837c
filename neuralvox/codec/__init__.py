"""The codec: sequence encoder and decoder, archive header, bounded value codec and the neural base's layers.

docs/design.md has the module map. Importing this package applies the process settings torch needs
(``neuralvox.runtime``); its modules load on first use.
"""

from neuralvox.runtime import prepare_torch

prepare_torch()
