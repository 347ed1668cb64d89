"""`python -m drcnet restore|info ...`: see drcnet/serve/cli.py."""
import sys

from drcnet.serve.cli import main

sys.exit(main())
