"""Logins that cost one slow hash, once: so that neither a CI farm nor a flood of wrong
passwords can keep the server's threads busy.

- A login is remembered for the life of the process, right or wrong, by a keyed hash of
  user, password and stored hash only: an account's requests cost one HMAC instead of a
  sha512_crypt (656,000 rounds), and a wrong password repeated costs no new hash.
- Wrong logins from one client address are counted; past FAILURE_LIMIT within
  FAILURE_WINDOW seconds, the address is throttled until the window has passed: its
  logins not already known are checked one at a time in a lane of their own
  (THROTTLED_HASHES, shared by every throttled address, so guessing never takes the
  slow-hash slots of anyone else), and a wrong one is refused with 429, slowly (hooks.py:
  nginx trickles the answer out, so a guessing client waits instead of asking again at
  once). A correct password always gets in, after at most one slow hash, whatever else
  came from its address (an office NAT, CI egress, the balancer).
- At most SLOW_HASHES slow hashes run at once; a login that would wait for one is
  refused at once (503, pip retries it) instead of holding a server thread. Requests
  with the very same login wait for the one hash already running for it.

Plain classes (no pyramid): the ppc-tasks repo unit-tests them.
"""
import collections
import hmac
import os
import threading
import time

FAILURE_LIMIT = 10
FAILURE_WINDOW = 60.0
SLOW_HASHES = 2
THROTTLED_HASHES = 1
SAME_LOGIN_WAIT = 10.0  # seconds a request waits for the hash of its very login


class TooManyFailures(Exception):
    """This address sent too many wrong logins; try again in `retry_after` seconds."""

    def __init__(self, retry_after):
        super().__init__(f"too many failed logins from this address: try again in "
                         f"{retry_after} s")
        self.retry_after = retry_after


class TooBusy(Exception):
    """Every slow-hash slot is taken."""

    def __init__(self):
        super().__init__("too many logins are being checked at once: try again shortly")


class LoginMemory:
    """Outcomes of logins checked in this process, by a keyed hash only."""

    LIMIT = 10000  # of each kind; then the oldest are forgotten

    def __init__(self):
        self._key = os.urandom(32)
        self._outcomes = collections.OrderedDict()  # digest -> True | False
        self._lock = threading.Lock()

    def digest(self, username, password, stored_hash):
        message = "\0".join((username, password, stored_hash)).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, "sha256").digest()

    def outcome(self, digest):
        """True or False when this login was checked before; None when it was not."""
        with self._lock:
            return self._outcomes.get(digest)

    def remember(self, digest, verified):
        with self._lock:
            self._outcomes[digest] = verified
            if len(self._outcomes) > 2 * self.LIMIT:
                self._outcomes.popitem(last=False)


class AddressThrottle:
    """Wrong logins per client address, in a sliding window."""

    def __init__(self, limit=FAILURE_LIMIT, window=FAILURE_WINDOW, clock=time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._failures = {}  # address -> deque of times
        self._lock = threading.Lock()

    def _recent(self, address, now):
        times = self._failures.get(address)
        while times and now - times[0] > self.window:
            times.popleft()
        if times is not None and not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address):
        """Seconds until the address is under its limit again; None while it is."""
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            if times is not None and len(times) >= self.limit:
                return max(1, int(self.window - (now - times[0])) + 1)
            return None

    def failed(self, address):
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            if times is None:
                if len(self._failures) >= LoginMemory.LIMIT:  # bounded under a botnet
                    self._failures.pop(next(iter(self._failures)))
                times = self._failures[address] = collections.deque()
            if len(times) < self.limit:
                times.append(now)


class Logins:
    """Verifies logins: remembered outcomes first, then one slow hash at a time per login,
    at most SLOW_HASHES at once, or THROTTLED_HASHES for throttled addresses."""

    def __init__(self, slow_hashes=SLOW_HASHES, throttle=None):
        self.memory = LoginMemory()
        self.throttle = throttle or AddressThrottle()
        self._slots = threading.BoundedSemaphore(slow_hashes)
        self._throttled_slots = threading.BoundedSemaphore(THROTTLED_HASHES)
        self._running = {}  # digest -> Event, while its hash runs
        self._lock = threading.Lock()

    def verify(self, username, password, stored_hash, address, slow_verify):
        digest = self.memory.digest(username, password, stored_hash)
        known = self.memory.outcome(digest)
        if known is None:
            with self._lock:
                running = self._running.get(digest)
            if running is not None:
                running.wait(SAME_LOGIN_WAIT)
                known = self.memory.outcome(digest)
        if known is not None:
            if not known:
                self.throttle.failed(address)
            return known
        retry_after = self.throttle.retry_after(address)
        slots = self._slots if retry_after is None else self._throttled_slots
        verified = self._verify_once(digest, slow_verify, slots)
        if not verified:
            self.throttle.failed(address)
            if retry_after is not None:
                raise TooManyFailures(retry_after)
        return verified

    def _verify_once(self, digest, slow_verify, slots):
        with self._lock:
            running = self._running.get(digest)
            if running is None:
                if not slots.acquire(blocking=False):
                    raise TooBusy()
                running = self._running[digest] = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            running.wait(SAME_LOGIN_WAIT)
            known = self.memory.outcome(digest)
            if known is None:
                raise TooBusy()
            return known
        try:
            verified = bool(slow_verify())
            self.memory.remember(digest, verified)
            return verified
        finally:
            with self._lock:
                del self._running[digest]
            slots.release()
            running.set()
