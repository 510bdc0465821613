# This repository's own session fixtures. The judge_eval plugin itself is registered by its
# pytest11 entry point (listing it here too would register it twice, which pytest refuses).
pytest_plugins = ["fixtures.network", "fixtures.study", "fixtures.pipeline"]
