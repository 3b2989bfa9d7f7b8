"""The networks behind genbench.backbones' registry, one module each with its views (metric extractor,
REPA target) and the one function that loads its weights."""
