"""`python -m helpers.folds RUN RUN ...`: each model's test metrics over the folds of a k-fold
cross-validation, every face's prediction pooled and per fold (helpers.reporting.folds)."""

from helpers.reporting.folds import main

if __name__ == "__main__":
    raise SystemExit(main())
