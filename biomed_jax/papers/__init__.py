"""The paper experiments and the quickstart as stage plans (biomed_jax/stages.py runs them; builders.py
makes their stages): each module's build(cfg, workdir) returns the stages and report(cfg, workdir,
summaries) writes the table."""
