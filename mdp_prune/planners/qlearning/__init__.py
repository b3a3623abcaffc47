"""The Q-learning planner: each round's pruning decision as an MDP (`env`) solved by tabular Q-learning
(`planner`, on top of the generic `qtable` library)."""
