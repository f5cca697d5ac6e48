"""Live streams (server-sent events) of workflows' commits: a shared change feed and its hub."""
