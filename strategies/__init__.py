"""fedchain strategies: the coordinator side of the Flower app and the strategy extension point."""
