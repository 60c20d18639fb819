"""`python -m titan.operator [kopf run options]`: the kopf operator, like
`kopf run -m titan.operator.kopf_app` (e.g. `python -m titan.operator -n titan --peering titan-brain`).
The typed CLI is `titan operator run|local`."""

import sys

from kopf.cli import main

if __name__ == "__main__":
    main(["run", "-m", "titan.operator.kopf_app", *sys.argv[1:]])
