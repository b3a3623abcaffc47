"""Grid search over the Q-learning hyperparameters and the honest comparison against the baselines."""
