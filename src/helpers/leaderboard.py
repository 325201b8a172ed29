"""`python -m helpers.leaderboard RUN [RUN ...]`: merges run folders onto the leaderboard
(helpers.evaluation.leaderboard)."""

from helpers.evaluation.leaderboard import main

if __name__ == "__main__":
    raise SystemExit(main())
