import sys

from memopt_theory.cli import main

sys.exit(main())
