"""The coordinator and cloud: Flower ServerApp, storage and analysis services, audit."""
