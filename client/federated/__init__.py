"""A hospital site in federated training: its data, local DP-SGD, and the Flower ClientApp."""
