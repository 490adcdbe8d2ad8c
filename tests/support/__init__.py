"""Helpers shared by tests: generated images, tiny model fixtures."""
