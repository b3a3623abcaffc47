"""Figures of runs, built from the results store's tables."""
