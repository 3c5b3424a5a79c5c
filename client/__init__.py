"""A hospital site: CLI, Flower ClientApp with DP training, compress, encrypt and upload."""
