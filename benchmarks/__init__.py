"""The benchmark harness: config, registry, timing, metrics, results, CLI. Cases are sub-packages."""
