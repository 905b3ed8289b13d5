"""Answers of the simple API kept in this process, so that a resolve, which asks for
dozens of pages and metadata files in a row, does not build each again from the
database (what made it slower than devpi-server).

What it promises:

- An answer is only ever given again to the same account, at the same address, for
  the same Accept header: what a client may read is decided once, by pypicloud and the
  guard, when the answer is first made.
- Every change the guard records (an upload, a delete, a yank, a backfilled record, from
  any index host) sets a new random generation token in the cache database, in the same
  transaction. An answer is given only to a request that read the very token it was
  made under, so none outlives the change, on any host; a token never comes back, so a
  restored database cannot bring back an answer either.
- What changes the index without the guard (pypicloud's rebuild from storage, an older
  image on another host during a rolling deploy) shows within MAX_AGE seconds.
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
    made: float  # the clock's reading when it was made


class Answers:
    def __init__(self, max_bytes=MAX_BYTES, max_age=MAX_AGE, clock=time.monotonic):
        self.max_bytes, self.max_age, self.clock = max_bytes, max_age, clock
        self._token = None  # the generation every kept answer was made under
        self._kept = collections.OrderedDict()  # key -> Answer, least recently used first
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key, token):
        """The answer kept for `key` under `token`, or None."""
        with self._lock:
            if token != self._token:
                self._forget_all(token)
                return None
            answer = self._kept.get(key)
            if answer is None:
                return None
            if self.clock() - answer.made > self.max_age:
                self._forget(key)
                return None
            self._kept.move_to_end(key)
            return answer

    def keep(self, key, token, headers, body):
        """Keep an answer made after `token` was read; kept only while it is current."""
        with self._lock:
            if token != self._token or len(body) > self.max_bytes:
                return
            if key in self._kept:
                self._forget(key)
            self._kept[key] = Answer(tuple(headers), body, self.clock())
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                self._forget(next(iter(self._kept)))

    def _forget(self, key):
        self._bytes -= len(self._kept.pop(key).body)

    def _forget_all(self, token):
        self._kept.clear()
        self._bytes = 0
        self._token = token
