"""biosignal pipeline: physiological and audio signals to images, and models that learn from them."""

__version__ = "0.1.0"
