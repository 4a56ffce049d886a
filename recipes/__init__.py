"""asyncio-cookbook: tested, copy-ready asyncio recipes.

Each module in this package is one chapter of the cookbook and stands on its
own: copy ``recipes/queues.py`` (say) into your project and it works, with
nothing but the standard library and, for the I/O chapters, the one library
the chapter is about.  Every example in the docstrings is run by the test
suite on Python 3.8 to 3.15.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
