"""The paper experiments as stage plans (biomed_jax/stages.py): each module's build(cfg, workdir) returns
the stages and report(cfg, workdir, summaries) writes the paper's table."""
