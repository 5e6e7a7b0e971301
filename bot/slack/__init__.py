"""airlock in Slack: the Bolt app, its listeners, and how messages and cards are built."""
