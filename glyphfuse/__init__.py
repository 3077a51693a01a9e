"""glyphfuse: diffusion models that write a given text legibly into the images they generate.

The command line (``glyphfuse --help``) is a thin layer over this package; everything it does
can be scripted from Python through the modules listed in README.md.
"""

__version__ = "0.10.0"
