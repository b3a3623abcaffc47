"""The training engine: datasets in memory, the paper's models, masked training, and pure pruning functions.

Nothing here knows about runs, files or planners; everything above builds on it.
"""
