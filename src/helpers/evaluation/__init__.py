"""Scoring predictions: metrics, bootstrap intervals, model health, comparison and leaderboard."""
