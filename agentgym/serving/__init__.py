"""agentgym environments and tools served to other frameworks.

* :mod:`agentgym.serving.env_server`: ``agentgym serve-env ENV_ID`` serves any registered
  environment over OpenEnv's WebSocket protocol (one environment per session), with a bearer
  token, session limits and timeouts.
* :mod:`agentgym.serving.remote_env`: ``gymnasium.make("agentgym/Remote-v0", url=...,
  token=...)``, a Gymnasium environment whose episodes run on such a server.
* :mod:`agentgym.serving.mcp_tools`: ``agentgym serve-tools`` exposes any agentgym tool set
  as an MCP server over stdio, and :class:`~agentgym.serving.mcp_tools.MCPToolEnv` turns an
  MCP server's tools into an agentgym tool environment.
* :mod:`agentgym.serving.trl_environment`: a tool environment (local or served) as a TRL
  ``GRPOTrainer(environment_factory=...)`` class.

Nothing here is imported by ``import agentgym``: the server and MCP dependencies (the
``serve`` extra) load only when these modules are used.
"""
