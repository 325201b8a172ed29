"""`python -m helpers.synthetic`: writes the generated demo dataset (helpers.data.synthetic)."""

from helpers.data.synthetic import main

if __name__ == "__main__":
    raise SystemExit(main())
