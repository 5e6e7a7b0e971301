"""Memory: working memory, session facts and long-term memory."""
