"""``python -m bot`` is the ``airlock`` command."""

from bot.cli.main import main

main()
