"""refapp's inference server: a tiny character-level language model behind an OpenAI-style API."""

__version__ = "0.1.0"
