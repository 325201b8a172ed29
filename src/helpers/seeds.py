"""`python -m helpers.seeds RUN RUN ...`: each model's test metrics as mean ± standard deviation
over runs that differ only in their seed (helpers.reporting.seeds)."""

from helpers.reporting.seeds import main

if __name__ == "__main__":
    raise SystemExit(main())
