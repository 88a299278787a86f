"""What the tests share besides fixtures: the repository's root, data factories, servers and harnesses."""
