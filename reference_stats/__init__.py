"""Reference statistics shipped with genbench (package data: registry.json, shapes32.npz)."""
