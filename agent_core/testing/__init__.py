"""Local stand-ins for Slack, Anthropic and Redis, shared by tests, benchmarks and the demo.

Nothing here is imported by the running bot; it exists so that everything can
be exercised offline against real HTTP servers and a real redis-server.
"""
