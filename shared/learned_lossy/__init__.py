"""The learned lossy MR codec (mean-scale hyperprior) and its hybrid near-lossless mode.

Registered as ``neural-lossy``; see docs/learned-lossy-codec.md.
"""
