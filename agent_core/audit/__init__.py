"""The audit trail: every model call, tool call and decision, sealed and verifiable.

``trail`` appends and checks events, ``chain`` seals events, heads and the anchor
(HMAC-SHA256), ``verify`` checks one trail. (Nothing is imported here: ``config`` needs
``chain`` before the store, which ``trail`` needs, can be imported.)
"""
