"""tailor-evo: discover reasoning primitives by quality-diversity search and use them to warm-start RL."""

__version__ = "0.1.0"
