"""Probe Flower App of the member worker's tests and benchmark."""
