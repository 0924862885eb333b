"""The fedchain member node: a Flower ClientApp, its node logic, and the demo task."""
