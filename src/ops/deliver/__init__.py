"""Delivery: build the serving image, deploy it to an environment, smoke-test the result."""
