"""One writer per output: a lock file beside the folder (or file) a run writes.

Why: two trainings (or conversions, predictions) started into one output
interleave their files and leave a mix that neither run wrote. The lock is
`PARENT/.NAME.lock` beside the output `PARENT/NAME` (beside, not inside: an
output folder may be wiped by --overwrite or replaced by a rename, and the
lock must outlive both). It is created with O_CREAT|O_EXCL (atomic, also on
NFS v3+) and holds JSON {host, pid, start_time, heartbeat, boot_id, token}.

- A second run finds the lock and refuses with an InputError naming the
  output and the holder (host, pid, start time).
- A stale lock (kill -9, pre-emption, reboot) is taken over with a warning,
  so rerunning the command after a crash resumes without a flag: on the same
  host when the holder's pid is gone or the machine rebooted since (boot_id);
  on another host when its heartbeat is older than STALE_SECONDS. A thread
  rewrites the heartbeat every HEARTBEAT_SECONDS while the lock is held.
- Released on leaving the `with` block however that happens (exception,
  Ctrl-C, SIGTERM, which is turned into SystemExit while the lock is held),
  and at interpreter exit.
- Remote outputs (gs://, s3://: no exclusive create) are not locked; a
  warning says so.
"""

import atexit
import datetime
import json
import os
import signal
import socket
import threading
import time
import uuid

from absl import logging

from tfseaice.errors import InputError

HEARTBEAT_SECONDS = float(os.environ.get("TFSEAICE_LOCK_HEARTBEAT", "30"))
STALE_SECONDS = float(os.environ.get("TFSEAICE_LOCK_STALE", "300"))


def lock_path(output):
    """`PARENT/.NAME.lock` for the output `PARENT/NAME` (a folder or a file)."""
    output = os.path.abspath(os.fspath(output)).rstrip(os.sep) or os.sep
    parent, name = os.path.split(output)
    return os.path.join(parent, f".{name}.lock")


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _now():
    return time.time()


def _iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or an odd pid): assume it runs
    return True


def describe(holder):
    """'host H, pid P, started T' of a lock's JSON (what the refusal names)."""
    if not holder:
        return "a run whose lock file is still being written"
    return (f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, started "
            f"{_iso(holder['start_time']) if 'start_time' in holder else '?'}")


def stale_reason(holder, mtime, now=None):
    """Why the lock `holder` (its JSON; None = unreadable) is stale, or None when its run may be alive."""
    now = _now() if now is None else now
    if not holder:  # empty or half-written: its writer died between create and write, or is writing now
        return f"unreadable lock file {now - mtime:.0f} s old" if now - mtime > STALE_SECONDS else None
    if holder.get("host") == socket.gethostname():
        if holder.get("boot_id") and _boot_id() and holder["boot_id"] != _boot_id():
            return "this machine rebooted since"
        if not _pid_alive(holder.get("pid", -1)):
            return f"pid {holder.get('pid')} is gone"
        return None
    beat = float(holder.get("heartbeat", holder.get("start_time", 0)))
    if now - beat > STALE_SECONDS:
        return f"no heartbeat for {now - beat:.0f} s"
    return None


def _read(path):
    """(JSON dict or None, mtime) of a lock file; (None, None) when it does not exist."""
    try:
        mtime = os.stat(path).st_mtime
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None, None
    try:
        return json.loads(text), mtime
    except ValueError:
        return None, mtime


class RunLock:
    """Exclusive lock on one output for this process; a context manager."""

    def __init__(self, output):
        self.output = os.fspath(output)
        self.remote = "://" in self.output
        self.path = None if self.remote else lock_path(self.output)
        self.token = uuid.uuid4().hex
        self.held = False
        self._stop = threading.Event()
        self._thread = None
        self._old_sigterm = None

    # ---------------------------------------------------------- acquiring
    def acquire(self):
        if self.remote:
            logging.warning("%s is not on a local or mounted file system: not locked against a second run "
                            "writing it at the same time", self.output)
            return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for _ in range(5):
            if self._create():
                self._started()
                return self
            holder, mtime = self._wait_readable()
            if mtime is None:
                continue  # released meanwhile: try again
            reason = stale_reason(holder, mtime)
            if reason is None:
                raise InputError(self.output, f"is in use by another run ({describe(holder)}; lock "
                                              f"{self.path}): wait for it to end or choose another folder")
            if self._break(holder, mtime):
                logging.warning("%s: taking over the stale lock of %s (%s)", self.output, describe(holder), reason)
        raise InputError(self.output, f"cannot take the lock {self.path}: other runs keep taking it")

    def _create(self):
        now = _now()
        self.info = {"host": socket.gethostname(), "pid": os.getpid(), "start_time": now, "heartbeat": now,
                     "boot_id": _boot_id(), "token": self.token, "output": os.path.abspath(self.output)}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise InputError(self.path, f"cannot create the lock file ({exc.strerror or exc})") from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self.info))
            f.flush()
            os.fsync(f.fileno())
        return True

    def _wait_readable(self, tries=100):
        """The holder's JSON; a lock created a moment ago may not hold it yet: wait a little for it."""
        for _ in range(tries):
            holder, mtime = _read(self.path)
            if holder is not None or mtime is None:
                return holder, mtime
            time.sleep(0.05)
        return holder, mtime

    def _break(self, holder, mtime):
        """Remove a stale lock, unless someone else broke or renewed it meanwhile (serialised by a
        second exclusive file, so two runs that found the same stale lock never both remove it)."""
        breaker = self.path + ".break"
        try:
            fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:  # a breaker that died mid-break (a few ms of work) is removed after a while
                if _now() - os.stat(breaker).st_mtime > 10:
                    os.remove(breaker)
            except FileNotFoundError:
                pass
            time.sleep(0.1)
            return False
        os.close(fd)
        try:
            again, mtime_again = _read(self.path)
            if again == holder and mtime_again == mtime:
                os.remove(self.path)
                return True
            return False
        finally:
            os.remove(breaker)

    def _started(self):
        self.held = True
        self.pid = os.getpid()  # a forked child inherits this object: only this process releases
        atexit.register(self.release)
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None):
                self._old_sigterm = current
                signal.signal(signal.SIGTERM, _exit_on_sigterm)
        self._thread = threading.Thread(target=self._beat, name="tfseaice-lock-heartbeat", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------- holding
    def _beat(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            holder, _ = _read(self.path)
            if not holder or holder.get("token") != self.token:
                logging.warning("%s: the lock %s is no longer this run's", self.output, self.path)
                return
            self.info["heartbeat"] = _now()
            tmp = f"{self.path}.{self.token}.tmp"
            try:
                with open(tmp, "w") as f:
                    f.write(json.dumps(self.info))
                os.replace(tmp, self.path)  # atomic: the lock file never disappears or reads half
            except OSError as exc:
                logging.warning("%s: cannot renew the lock's heartbeat (%s)", self.output, exc)

    def release(self):
        if not self.held or os.getpid() != self.pid:
            return
        self.held = False
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        holder, _ = _read(self.path)
        if holder and holder.get("token") == self.token:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) is _exit_on_sigterm:
                signal.signal(signal.SIGTERM, self._old_sigterm)
        atexit.unregister(self.release)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, exc_type, exc, tb):
        self.release()
        return False


def _exit_on_sigterm(signum, frame):
    """SIGTERM while a lock is held: unwind (finally blocks, `with` exits) and exit 143."""
    raise SystemExit(128 + signum)


def locked(output):
    """`with locked(path):` holds the lock on `path` for the block."""
    return RunLock(output)
