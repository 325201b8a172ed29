"""`python -m helpers.predict`: the command-line predictor (helpers.inference.cli)."""

from helpers.inference.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
