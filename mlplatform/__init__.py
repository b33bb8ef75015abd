"""Shared logic of the movie-review sentiment platform: settings, lake, sources, training, serving, client."""
