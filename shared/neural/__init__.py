"""The learned lossless / near-lossless MRI codec (registered as ``neural``); see docs/neural-codec.md."""
