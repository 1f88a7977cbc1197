"""``agentgym view``: a local, read-only web viewer for runs and trajectory stores."""
