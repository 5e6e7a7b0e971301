"""The agent core's fixtures (stand-in, real LLM class, SQLite store, harness) for attacks."""

from tests.agent.conftest import anthropic, harness_factory, llm, store, tools

__all__ = ["anthropic", "harness_factory", "llm", "store", "tools"]
