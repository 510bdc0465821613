pytest_plugins = ["judge_eval.plugin", "fixtures.study", "fixtures.pipeline"]
