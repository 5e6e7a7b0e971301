"""Where the Redis store keeps each record, and the script that creates one.

Every key starts with the store's prefix (``airlock:`` by default)::

    run:<id>, approval:<id>     the record, as JSON, packed when that is shorter
                                (``_redis_codec``, as are the values below)
    runs, runs:<status>         sorted sets of run ids, scored by creation time
    approvals:pending           sorted set of pending approval ids, scored by request time
    checkpoint:<run id>         the run's checkpoint: text, packed or zlib-compressed
    audit:<run id>              list of the run's audit events, as JSON (packed), oldest first
    audithead:<run id>          the trail's sealed head; auditanchor: the trail count
                                (see ``_redis_audit``)
    idem:<key>                  a claimed idempotency key, until it expires
    rate:<key>:<window>         hits in one rate-limit window, until it expires
    spend:<key>                 a running total of dollars, until it expires
    fact:<scope>:<name>         a fact's value, until it expires
    factnames:<scope>           sorted set of the scope's fact names (all scored 0: a
                                small one is a listpack, where a set of text is a hash
                                table before Redis 7.2), pruned as they expire, and
                                expiring with the last of them
    facts:<scope>               the same as a set, as versions before wrote it (read, pruned)
    halt                        the halt state, as JSON
    signals                     the pub/sub channel for signals
    mem..., memid..., mems...   long-term memory records (see ``_redis_memories``)
    toolcalls:<run id>          the run's tool-call journal (see ``_redis_journal``)
    msgs:<subject>:<id>         where the messages about a run or an approval are
                                (see ``_redis_messages``)

A new record and its index entries are written by one script, :data:`CREATE`,
so that no reader finds an index entry without its record, or the reverse.
Spend totals are added to by :data:`ADD_SPEND`, which starts a total's expiry at
its first addition only. A fact and its name in the scope's index are written by
:data:`SET_FACT`.
"""

from __future__ import annotations

__all__ = ["ADD_SPEND", "CREATE", "SET_FACT", "KeyLayout"]

# SET the record if absent, then add its id to each index (sorted sets) with one score.
CREATE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
for i = 2, #KEYS do redis.call('ZADD', KEYS[i], ARGV[3], ARGV[2]) end
return 1
"""

# INCRBYFLOAT each total; a total without an expiry is new: it expires ARGV[2] ms from now.
ADD_SPEND = """
local totals = {}
for i, key in ipairs(KEYS) do
  totals[i] = redis.call('INCRBYFLOAT', key, ARGV[1])
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[2]) end
end
return totals
"""

# SET the fact with its expiry, list its name (ARGV[3]) in the scope's index, and keep the
# index until the longest-lived of its facts expires (PTTL is -1 for a new index).
SET_FACT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1
"""


class KeyLayout:
    """The keys of one store: ``key("run", run_id)`` is ``<prefix>run:<run_id>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)
