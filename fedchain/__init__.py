"""fedchain: federated learning with differential privacy, homomorphic aggregation and on-chain rewards."""
