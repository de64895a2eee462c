"""Pure planning: recipe + model config.json + target GPU → BuildPlan. No I/O beyond config.json."""
