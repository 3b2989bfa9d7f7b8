"""Pure metric library: features and statistics in, numbers out. Imports nothing from genbench."""
