"""The example resource: replace it with your own domain."""
