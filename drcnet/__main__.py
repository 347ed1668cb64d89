"""`python -m drcnet ...`: see drcnet/cli.py."""
import sys

from drcnet.cli import main

sys.exit(main())
