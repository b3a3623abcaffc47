import sys

from mdp_prune.cli import main

sys.exit(main())
