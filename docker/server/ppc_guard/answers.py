"""Answers of the simple API kept in this process, so that a resolve, which asks for
dozens of pages and metadata files in a row, does not build each again from the
database (what made it slower than devpi-server).

What it promises:

- An answer is only ever given again to the same account, at the same address, in the
  same form (HTML or JSON): what a client may read is decided once, by pypicloud and
  the guard, when the answer is first made.
- Every change the guard records (an upload, a delete, a yank, a backfilled record, from
  any index host) sets a new random generation token for the project, and one for the
  list of projects, in the cache database, in the same transaction (registry.py). An
  answer is given only to a request that read the very token it was made under, so none
  outlives the change, on any host; other projects' answers stay. A token never comes
  back, so a restored database cannot bring back an answer either.
- What changes the index without the guard (pypicloud's rebuild from storage, an older
  image on another host during a rolling upgrade) shows within MAX_AGE seconds.
- At most MAX_BYTES of answers are kept; the least recently used go first.

Plain class (no pyramid): the ppc-tasks repo unit-tests it.
"""
import collections
import threading
import time
from dataclasses import dataclass

MAX_AGE = 60.0
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Answer:
    headers: tuple  # (name, value) pairs, as the first answer had them
    body: bytes
    token: object  # the generation token read before it was made
    made: float  # the clock's reading then


class Answers:
    def __init__(self, max_bytes=MAX_BYTES, max_age=MAX_AGE, clock=time.monotonic):
        self.max_bytes, self.max_age, self.clock = max_bytes, max_age, clock
        self._kept = collections.OrderedDict()  # key -> Answer, least recently used first
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key, token):
        """The answer kept for `key`, if it was made under `token`; else None."""
        with self._lock:
            answer = self._kept.get(key)
            if answer is None:
                return None
            if answer.token != token or self.clock() - answer.made > self.max_age:
                self._forget(key)
                return None
            self._kept.move_to_end(key)
            return answer

    def keep(self, key, token, headers, body):
        """Keep an answer made after `token` was read."""
        if len(body) > self.max_bytes:
            return
        with self._lock:
            if key in self._kept:
                self._forget(key)
            self._kept[key] = Answer(tuple(headers), body, token, self.clock())
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                self._forget(next(iter(self._kept)))

    def _forget(self, key):
        self._bytes -= len(self._kept.pop(key).body)
