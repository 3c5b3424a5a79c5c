"""The coordinator of federated training: ServerApp, aggregation strategy, checkpoints, MLflow."""
