"""ml_collections config files; select a preset with `--config=configs/<file>.py:<preset>`."""
