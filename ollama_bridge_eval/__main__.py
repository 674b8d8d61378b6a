"""``python -m ollama_bridge_eval``: see :mod:`ollama_bridge_eval.cli`."""
import sys

from .cli import main

sys.exit(main())
