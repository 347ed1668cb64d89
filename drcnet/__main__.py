"""`python -m drcnet ...`: see drcnet/cli.py."""
import sys

from .cli import main

sys.exit(main())
